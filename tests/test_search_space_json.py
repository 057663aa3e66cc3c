"""AlgoPerf's `tuning_search_space.json`: a mapping to sample, or a list of fixed points that are
the trials themselves; how a submission's search space file is found; sweeps over a list."""

import json
import shutil
from pathlib import Path

import pytest
from conftest import FIXTURES

from algoperf import sweep
from algoperf.config import compose
from algoperf.errors import AlgoperfError
from algoperf.plugins import REPO_ROOT, SubmissionSource
from algoperf.tuning import (
    SearchSpace,
    check_overrides,
    check_sweep_overrides,
    derive_seed,
    load_search_space,
    trial_hparams,
)

MAPPING = {
    "learning_rate": {"min": 1e-4, "max": 1e-2, "scaling": "log"},
    "dropout_rate": {"min": 0.0, "max": 0.5, "scaling": "linear"},
    "nesterov": {"feasible_points": [True, False]},
    "schedule": {"feasible_points": ["cosine", "linear"]},
    "batch_size": {"feasible_points": [32, 64, 128]},
}
POINTS = [
    {"learning_rate": 0.0013, "beta2": 0.998, "nesterov": True, "dropout_rate": 0.0, "name": "a"},
    {"learning_rate": 0.0008, "beta2": 0.999, "nesterov": False, "dropout_rate": 0.1, "name": "b"},
    {"learning_rate": 0.0021, "beta2": 0.99, "nesterov": True, "dropout_rate": 0.0, "name": "c"},
    {"learning_rate": 0.0005, "beta2": 0.95, "nesterov": False, "dropout_rate": 0.0, "name": "d"},
    {"learning_rate": 0.0034, "beta2": 0.9, "nesterov": True, "dropout_rate": 0.0, "name": "e"},
]


def write_json(folder: Path, content, name: str = "tuning_search_space.json") -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / name
    path.write_text(content if isinstance(content, str) else json.dumps(content, indent=2))
    return path


# ---- the mapping form -----------------------------------------------------------------------------


def test_mapping_form_parses_to_ranges_and_choices(tmp_path):
    space = SearchSpace.from_json(write_json(tmp_path, MAPPING))
    kinds = {p.name: (p.kind, p.low, p.high, p.scaling, p.choices) for p in space.params}
    assert kinds == {
        "learning_rate": ("range", 1e-4, 1e-2, "log", ()),
        "dropout_rate": ("range", 0.0, 0.5, "linear", ()),
        "nesterov": ("choice", None, None, "linear", (True, False)),
        "schedule": ("choice", None, None, "linear", ("cosine", "linear")),
        "batch_size": ("choice", None, None, "linear", (32, 64, 128)),
    }
    assert space.max_trials is None and space.points is None
    assert len(space.tunable) == 5
    for point in space.sample_many(64, study_seed=5):
        assert 1e-4 <= point["learning_rate"] <= 1e-2
        assert 0.0 <= point["dropout_rate"] <= 0.5
    assert set(space.defaults()) == set(MAPPING)


def test_feasible_points_are_sampled_from_the_listed_values_with_their_json_types(tmp_path):
    space = SearchSpace.from_json(write_json(tmp_path, MAPPING))
    points = space.sample_many(200, study_seed=derive_seed(0, "study", 0))
    for name, listed in (("nesterov", [True, False]), ("schedule", ["cosine", "linear"])):
        values = [p[name] for p in points]
        assert set(values) == set(listed)
        assert all(type(v) is type(listed[0]) for v in values)  # a bool stays a bool, not 1/0
    sizes = [p["batch_size"] for p in points]
    assert set(sizes) == {32, 64, 128} and all(type(s) is int for s in sizes)


# ---- the list form --------------------------------------------------------------------------------


def test_list_form_trial_k_runs_point_k_in_every_study(tmp_path):
    space = SearchSpace.from_json(write_json(tmp_path, POINTS))
    assert space.max_trials == 5
    assert [p.name for p in space.params] == list(POINTS[0])
    assert {p.name for p in space.tunable} == {"learning_rate", "beta2", "nesterov", "dropout_rate", "name"}
    for study in range(3):
        seed = derive_seed(0, "study", study)
        for k, point in enumerate(POINTS):
            sampled = space.sample(k, seed)
            assert sampled == point
            assert [type(v) for v in sampled.values()] == [type(v) for v in point.values()]
    assert space.sample_many(3, study_seed=1) == POINTS[:3]
    assert space.defaults() == POINTS[0]


def test_list_form_points_are_copies(tmp_path):
    space = SearchSpace.from_json(write_json(tmp_path, [{"x": [1, 2]}, {"x": [3]}]))
    first = space.sample(0, 0)
    first["x"].append(99)
    assert space.sample(0, 0) == {"x": [1, 2]} and space.defaults() == {"x": [1, 2]}


@pytest.mark.parametrize("trial", [5, 7])
def test_list_form_trial_out_of_range_names_how_many_points(tmp_path, trial):
    space = SearchSpace.from_json(write_json(tmp_path, POINTS))
    with pytest.raises(AlgoperfError, match=r"lists 5 fixed point\(s\), so a study has trials 0\.\.4"):
        space.sample(trial, 0)


def test_list_form_in_trial_hparams_and_overrides(tmp_path):
    space = SearchSpace.from_json(write_json(tmp_path, POINTS))
    assert trial_hparams(space, "external", 0, 2, 3, {}) == POINTS[3]
    assert trial_hparams(space, "external", 0, 0, None, {}) == POINTS[0]
    assert trial_hparams(space, "self", 0, 0, 4, {}) == POINTS[0]  # self-tuning: the defaults
    assert trial_hparams(space, "external", 0, 0, 1, {"beta2": 0.5}) == {**POINTS[1], "beta2": 0.5}
    with pytest.raises(AlgoperfError, match="hparams.beta3 is not in the search space"):
        trial_hparams(space, "external", 0, 0, 1, {"beta3": 0.5})


def test_list_form_overrides_keep_the_type_of_the_listed_values(tmp_path):
    space = SearchSpace.from_json(write_json(tmp_path, POINTS))
    check_overrides(space, {"learning_rate": 0.01, "beta2": 1, "nesterov": False, "name": "z"})
    with pytest.raises(AlgoperfError, match=r"hparams.nesterov=1: nesterov is a boolean \(true/false\)"):
        check_overrides(space, {"nesterov": 1})
    with pytest.raises(AlgoperfError, match="hparams.learning_rate='fast': learning_rate is a number"):
        check_overrides(space, {"learning_rate": "fast"})
    with pytest.raises(AlgoperfError, match="Did you mean 'beta2'"):
        check_overrides(space, {"beta1": 0.9})
    constant = SearchSpace.from_json(write_json(tmp_path / "c", [{"flag": True}, {"flag": True}]))
    assert [p.kind for p in constant.params] == ["fixed"]
    with pytest.raises(AlgoperfError, match="flag is fixed to True"):
        check_overrides(constant, {"flag": "yes"})


# ---- errors ---------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "content, fragments",
    [
        (
            {"lr": {"min": 1, "max": 2, "scaling": "log", "default": 1.5}},
            ["'lr'", "unknown key(s) ['default']"],
        ),
        ({"lr": {"feasible_points": [1], "scaling": "log"}}, ["'lr'", "unknown key(s) ['scaling'] beside"]),
        ({"lr": {"min": 0.1, "max": 0.01, "scaling": "log"}}, ["'lr'", "min (0.1) must be below max (0.01)"]),
        ({"lr": {"min": 0.1, "max": 0.1, "scaling": "linear"}}, ["min (0.1) must be below max (0.1)"]),
        ({"lr": {"min": 0.0, "max": 1.0, "scaling": "log"}}, ['"log" scaling needs min > 0 (got 0.0)']),
        ({"lr": {"min": "a", "max": 1.0, "scaling": "log"}}, ["'lr'", "min is 'a'; give a finite number"]),
        ({"lr": {"min": 1e-3, "max": 1.0}}, ["'lr'", "scaling missing", "no default scaling"]),
        ({"lr": {"min": 1e-3, "max": 1.0, "scaling": "exp"}}, ['scaling is \'exp\'; give "log" or "linear"']),
        ({"wd": {"feasible_points": 0.1}}, ["'wd'", "feasible_points is a number", "non-empty list"]),
        ({"wd": {"feasible_points": []}}, ["'wd'", "feasible_points is an empty list"]),
        ({"wd": 0.1}, ["'wd'", 'for a fixed value write {"feasible_points": [0.1]}']),
        ({"1wd": {"feasible_points": [1]}}, ["'1wd'", "Python identifiers"]),
        (
            '{"lr": {"min": 1e-4,\n "max" 1e-2}}',
            ["line 2, column 8", "Expecting ':' delimiter", "fix the JSON"],
        ),
        ('{"lr": {"feasible_points": [1]}, "lr": {"feasible_points": [2]}}', ["duplicate key 'lr'"]),
        (3, ["got a number", "mapping of hyperparameter names", "list of fixed points"]),
        ("", ["line 1, column 1", "Expecting value"]),
        ([], ["the list of fixed points is empty"]),
        ([{"a": 1}, 2], ["point 1 is a number", "mapping of hyperparameter names to values"]),
        ([{"a": 1, "b": 2}, {"a": 1, "b": 2}, {"a": 1, "c": 3}], ["point 2 lacks ['b'] and adds ['c']"]),
        ([{"a": 1, "b": 2}, {"a": 1}], ["point 1 lacks ['b'] compared with point 0", "['a', 'b']"]),
        ([{"a": 1}, {"a": 1, "b": 2}], ["point 1 adds ['b']"]),
    ],
)
def test_malformed_json_is_explained(tmp_path, content, fragments):
    path = write_json(tmp_path, content if content != 3 else "3")
    with pytest.raises(AlgoperfError) as caught:
        SearchSpace.from_json(path)
    message = str(caught.value)
    assert str(path) in message
    for fragment in fragments:
        assert fragment in message, message


# ---- which file is read ---------------------------------------------------------------------------


def test_yaml_wins_over_json_and_json_is_read_alone(tmp_path):
    write_json(tmp_path, POINTS)
    assert load_search_space(tmp_path).max_trials == 5
    (tmp_path / "search_space.yaml").write_text("learning_rate: {min: 0.001, max: 0.3, scaling: log}\n")
    space = load_search_space(tmp_path)
    assert space.source == str(tmp_path / "search_space.yaml") and space.max_trials is None
    assert [p.name for p in space.params] == ["learning_rate"]
    empty = load_search_space(tmp_path / "nothing_here")
    assert empty.params == [] and empty.max_trials is None


def test_an_explicit_path_wins(tmp_path):
    submission = tmp_path / "sub"
    (submission / "search_space.yaml").parent.mkdir()
    (submission / "search_space.yaml").write_text("learning_rate: 0.1\n")
    other = write_json(tmp_path / "elsewhere", POINTS[:2], name="space.json")
    assert load_search_space(submission, other).points == tuple(POINTS[:2])
    assert load_search_space(submission, str(other)).source == str(other)
    yml = tmp_path / "elsewhere" / "space.yml"
    yml.write_text("beta2: {choices: [0.9, 0.99]}\n")
    assert [p.kind for p in load_search_space(submission, yml).params] == ["choice"]
    with pytest.raises(AlgoperfError, match="search_space='.*missing.json': no such file"):
        load_search_space(submission, tmp_path / "missing.json")
    with pytest.raises(AlgoperfError, match=r"a \.yaml/\.yml file .* or a \.json file"):
        load_search_space(submission, tmp_path / "space.txt")


def test_search_space_setting_is_checked_when_composed(tmp_path):
    base = ["workload=toy", "submission=x", "hardware=test"]
    with pytest.raises(
        AlgoperfError, match=r"search_space='.*nope\.json': is not an existing file; give the path"
    ):
        compose([*base, f"search_space={tmp_path / 'nope.json'}"])
    (tmp_path / "a.txt").write_text("x")
    with pytest.raises(AlgoperfError, match="is not a .yaml, .yml or .json file"):
        compose([*base, f"search_space={tmp_path / 'a.txt'}"])
    path = write_json(tmp_path, POINTS)
    assert compose([*base, f"search_space={path}"]).search_space == str(path)
    assert compose(base).search_space is None


def test_sweep_overrides_are_checked_against_a_json_space(tmp_path):
    write_json(tmp_path / "listed", POINTS)
    write_json(tmp_path / "mapped", MAPPING)
    sources = {name: SubmissionSource(name, tmp_path / name) for name in ("listed", "mapped")}
    check_sweep_overrides(sources, {"learning_rate": 0.001, "nesterov": True})
    with pytest.raises(
        AlgoperfError, match="outside the range .* of learning_rate in the search space .*mapped"
    ):
        check_sweep_overrides(sources, {"learning_rate": 0.5})
    with pytest.raises(AlgoperfError, match="hparams.beta2 is not in the search space .*mapped"):
        check_sweep_overrides(sources, {"beta2": 0.9})
    with pytest.raises(AlgoperfError, match="not one of the choices \\[True, False\\] of nesterov"):
        check_sweep_overrides({"mapped": sources["mapped"]}, {"nesterov": 1})
    # An explicit search space replaces every submission's own.
    explicit = write_json(tmp_path / "x", {"beta2": {"feasible_points": [0.9]}})
    check_sweep_overrides(sources, {"beta2": 0.9}, explicit)
    with pytest.raises(AlgoperfError, match="hparams.nesterov is not in the search space"):
        check_sweep_overrides(sources, {"nesterov": True}, explicit)


def test_check_names_the_file_and_the_points(tmp_path, capsys):
    from algoperf.check import check_submission

    folder = tmp_path / "listed"
    shutil.copytree(FIXTURES / "submissions" / "sgd", folder)
    (folder / "search_space.yaml").unlink()
    write_json(folder, [{"learning_rate": 0.1}, {"learning_rate": 0.2}])
    assert check_submission(str(folder), "torch", "toy", run_step=False)
    out = capsys.readouterr().out
    assert (
        "search space: 2 fixed points from tuning_search_space.json (trial k of a study runs point k), "
        "1 hyperparameters; defaults = point 0 {'learning_rate': 0.1}" in out
    )
    (folder / "search_space.yaml").write_text(
        "learning_rate: {min: 0.001, max: 0.3, scaling: log, default: 0.1}\n"
    )
    assert check_submission(str(folder), "torch", "toy", run_step=False)
    out = capsys.readouterr().out
    assert "search space: search_space.yaml, 1 hyperparameters (1 tuned)" in out
    assert "tuning_search_space.json beside it is not read (search_space.yaml wins)" in out


def test_run_refuses_a_trial_beyond_the_points_before_anything_is_written(tmp_path, capsys):
    from algoperf.cli import main

    folder = tmp_path / "listed"
    shutil.copytree(FIXTURES / "submissions" / "sgd", folder)
    (folder / "search_space.yaml").unlink()
    write_json(folder, [{"learning_rate": 0.1}, {"learning_rate": 0.2}])
    results = tmp_path / "results"
    code = main(
        ["run", "workload=toy", f"submission={folder}", "hardware=test", f"results_dir={results}", "trial=2"]
    )
    assert code == 2 and "lists 2 fixed point(s), so a study has trials 0..1" in capsys.readouterr().err
    assert not results.exists()


# ---- sweeps ---------------------------------------------------------------------------------------


def _submission(tmp_path: Path, name: str, points: int | None) -> Path:
    folder = tmp_path / "subs" / name
    shutil.copytree(FIXTURES / "submissions" / "sgd", folder)
    if points is not None:
        (folder / "search_space.yaml").unlink()
        write_json(folder, [{"learning_rate": 0.01 * (k + 1)} for k in range(points)])
    return folder


def test_sweep_plans_one_trial_per_point_under_external(tmp_path, capsys):
    folders = {"five": _submission(tmp_path, "five", 5), "halton": _submission(tmp_path, "halton", None)}
    sources = {str(f): SubmissionSource(name, f) for name, f in folders.items()}
    base = ["workload=toy", f"submission={folders['five']}", "hardware=test"]
    cfg = compose(base)
    assert sweep.trials_per_submission(sources, cfg, 8) == {
        str(folders["five"]): 5,
        str(folders["halton"]): 8,
    }
    assert "submission five lists 5 points; num_trials=8 runs 5 trials per study" in capsys.readouterr().out
    assert sweep.trials_per_submission(sources, cfg, 3) == {
        str(folders["five"]): 3,
        str(folders["halton"]): 3,
    }
    assert "lists" not in capsys.readouterr().out  # nothing truncated
    assert sweep.trials_per_submission(sources, compose([*base, "ruleset=self"]), 1) == dict.fromkeys(
        sources, 1
    )
    # An explicit search space counts for every submission.
    explicit = write_json(tmp_path / "x", [{"learning_rate": 0.1}, {"learning_rate": 0.2}])
    counts = sweep.trials_per_submission(sources, compose([*base, f"search_space={explicit}"]), 8)
    assert counts == dict.fromkeys(sources, 2)

    sweep_cfg = compose_sweep_cfg(list(sources))
    counts = {str(folders["five"]): 5, str(folders["halton"]): 8}
    planned = sweep.plan_trials("s", tmp_path / "results", sweep_cfg, sources, 2, counts)
    by_submission = {}
    for trial in planned:
        by_submission.setdefault(trial.submission, set()).add((trial.study, trial.trial))
    assert by_submission == {
        "five": {(s, t) for s in range(2) for t in range(5)},
        "halton": {(s, t) for s in range(2) for t in range(8)},
    }
    assert len({t.directory for t in planned}) == len(planned) == 26


def compose_sweep_cfg(submissions):
    from algoperf.config import compose_sweep

    return compose_sweep(["workloads=[toy]", f"submissions=[{','.join(submissions)}]"])


def test_sweep_launches_each_trial_count_apart_and_passes_search_space(tmp_path, monkeypatch, capsys):
    """Without running trials: the multiruns the sweep would launch, and what each trial gets."""
    five, halton = _submission(tmp_path, "five", 5), _submission(tmp_path, "halton", None)
    launches = []
    monkeypatch.setattr(sweep, "_launch", lambda hydra_args: launches.append(hydra_args))
    args = [
        "sweep",
        "workloads=[toy]",
        f"submissions=[{five},{halton}]",
        "hardware=test",
        f"results_dir={tmp_path / 'results'}",
        "num_studies=1",
        "num_trials=8",
    ]
    from algoperf.cli import main

    main(args)
    out = capsys.readouterr().out
    assert "submission five lists 5 points; num_trials=8 runs 5 trials per study" in out
    assert "x 5-8 trials (per submission) = 13 trials" in out
    assert [(a[3], a[5]) for a in launches] == [
        (f"submission={five}", "trial=0,1,2,3,4"),
        (f"submission={halton}", "trial=0,1,2,3,4,5,6,7"),
    ]
    # A search_space setting reaches every trial as one of its overrides.
    launches.clear()
    explicit = write_json(tmp_path / "x", [{"learning_rate": 0.1}, {"learning_rate": 0.2}])
    main([*args, f"search_space={explicit}", "sweep=explicit"])
    assert len(launches) == 1 and launches[0][5] == "trial=0,1"
    assert f"search_space={explicit}" in launches[0]
    assert f"submission={five},{halton}" in launches[0]


def test_a_sweep_started_before_the_search_space_setting_resumes(tmp_path):
    cfg = compose(["workload=toy", "submission=x", "hardware=test"])
    folder = tmp_path / "s"
    sweep.check_sweep_settings(folder, cfg, ["toy"], ["torch"])
    recorded = json.loads((folder / sweep.SETTINGS_NAME).read_text())
    assert recorded["settings"]["search_space"] is None
    del recorded["settings"]["search_space"]
    (folder / sweep.SETTINGS_NAME).write_text(json.dumps(recorded))
    sweep.check_sweep_settings(folder, cfg, ["toy"], ["torch"])  # not refused
    path = write_json(tmp_path, POINTS)
    with pytest.raises(AlgoperfError, match="search_space: recorded \\(not set\\), requested"):
        sweep.check_sweep_settings(
            folder,
            compose(["workload=toy", "submission=x", "hardware=test", f"search_space={path}"]),
            ["toy"],
            ["torch"],
        )


# ---- a real trial ---------------------------------------------------------------------------------


@pytest.mark.slow
def test_a_trial_runs_the_listed_point_exactly(tmp_path):
    from algoperf.runner import run_trial

    folder = tmp_path / "adamw_points"
    shutil.copytree(REPO_ROOT / "submissions" / "adamw", folder, ignore=shutil.ignore_patterns("__pycache__"))
    (folder / "search_space.yaml").unlink()
    points = [
        {
            "learning_rate": 0.001 * (k + 1),
            "one_minus_beta1": 0.1 / (k + 1),
            "beta2": [0.99, 0.999, 0.995][k],
            "weight_decay": 0.01 * (k + 1),
            "warmup_fraction": 0.05,
            "label_smoothing": [0.0, 0.1, 0.2][k],
        }
        for k in range(3)
    ]
    write_json(folder, points)
    cfg = compose(
        [
            "workload=toy",
            f"submission={folder}",
            "hardware=test",
            f"results_dir={tmp_path / 'results'}",
            "ruleset=external",
            "trial=1",
            "max_steps=2",
            "progress=false",
        ]
    )
    record = run_trial(cfg, progress=False)
    assert record["status"] == "budget_exhausted", record["error"]
    assert record["hparams"] == points[1]
    assert record["hparams_source"] == "search" and record["trial"] == 1
