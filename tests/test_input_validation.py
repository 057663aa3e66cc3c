"""Input validation at the door of `algoperf run` and `algoperf sweep`: every bad value is refused
with a one-line `error: ...` (exit 2) naming the value and the fix, before anything is written."""

import os
import shutil
from pathlib import Path

import pytest
from conftest import FIXTURES, TOY_PROFILE, fixture_submission

from algoperf.cli import main
from algoperf.config import REPO_ROOT, compose
from algoperf.errors import AlgoperfError
from algoperf.schema import RunConfig
from algoperf.tuning import SearchSpace, check_overrides


def run_args(results: Path, *extra: str, submission: str = "sgd") -> list[str]:
    return [
        "run",
        "workload=toy",
        f"submission={fixture_submission(submission)}",
        "hardware=test",
        f"results_dir={results}",
        *extra,
    ]


def sweep_args(results: Path, *extra: str, submissions=("sgd",)) -> list[str]:
    return [
        "sweep",
        "workloads=[toy]",
        f"submissions=[{','.join(fixture_submission(s) for s in submissions)}]",
        "hardware=test",
        f"results_dir={results}",
        "sweep=t",
        *extra,
    ]


def refused(args: list[str], capsys, *fragments: str) -> str:
    """The command exits 2 with one line `error: ...` holding every fragment; no traceback."""
    assert main(args) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and "Traceback" not in err, err
    assert len(err.strip().splitlines()) == 1, err
    for fragment in fragments:
        assert fragment in err, (fragment, err)
    return err


# ---- 1. hparams.NAME=value against the submission's search space ---------------------------------

HPARAMS = [
    ("run", ["momentum"], "hparams.learning_rat=0.05", ["hparams.learning_rat is not in", "'learning_rate'"]),
    ("run", ["momentum"], "hparams.learning_rate=0.5", ["=0.5 is outside the range [0.01, 0.1]"]),
    ("run", ["momentum"], "hparams.learning_rate=1e-9", ["is outside the range [0.01, 0.1]"]),
    ("run", ["momentum"], "hparams.learning_rate=abc", ["'abc': learning_rate is a number"]),
    ("run", ["momentum"], "hparams.momentum=0.85", ["=0.85 is not one of the choices [0.8, 0.9]"]),
    ("run", ["momentum"], "hparams.momentum=true", ["=True is not one of the choices [0.8, 0.9]"]),
    ("run", ["faulty"], "hparams.fail_step=1.5", ["=1.5: fail_step is fixed to 3 (an integer)"]),
    ("run", ["faulty"], "hparams.fail_in=hangs", ["'hangs' is not one of the choices", "'hang'"]),
    # A sweep checks every submission: sgd takes learning_rate=0.2, momentum does not.
    ("sweep", ["sgd", "momentum"], "hparams.learning_rate=0.2", ["momentum/search_space.yaml"]),
    ("sweep", ["momentum", "sgd"], "hparams.momentum=0.9", ["hparams.momentum is not in", "sgd/"]),
]


@pytest.mark.parametrize("command, submissions, override, fragments", HPARAMS)
def test_hparams_overrides_are_checked_against_the_search_space(
    tmp_path, capsys, command, submissions, override, fragments
):
    results = tmp_path / "results"
    if command == "run":
        args = run_args(results, override, submission=submissions[0])
    else:
        args = sweep_args(results, override, submissions=submissions)
    refused(args, capsys, override.split("=")[0], *fragments)
    assert not results.exists()
    # Values inside the space pass; a submission without a search space takes any name.
    space = SearchSpace.from_yaml(FIXTURES / "submissions" / "momentum" / "search_space.yaml")
    check_overrides(space, {"learning_rate": 0.05, "momentum": 0.8})
    check_overrides(SearchSpace([], "none"), {"anything": "goes"})


# ---- 2. duplicate YAML keys -------------------------------------------------------------------------


def _copy_conf(tmp_path: Path, relative: str, text: str) -> Path:
    conf = tmp_path / "conf"
    shutil.copytree(REPO_ROOT / "conf", conf)
    (conf / relative).write_text(text)
    return conf


DUPLICATES = ["search_space.yaml", "config_path_hardware", "conf_config.yaml", "conf_ruleset"]


@pytest.mark.parametrize("where", DUPLICATES)
def test_duplicate_yaml_keys_are_refused_with_file_and_line(tmp_path, capsys, monkeypatch, where):
    results = tmp_path / "results"
    extra: list[str] = []
    submission = "sgd"
    if where == "search_space.yaml":
        folder = tmp_path / "dup_space"
        shutil.copytree(FIXTURES / "submissions" / "sgd", folder)
        (folder / "search_space.yaml").write_text(
            "# twice\nlearning_rate: {min: 0.001, max: 0.3}\nlearning_rate: 0.1\n"
        )
        submission = str(folder)
        fragments = ["search_space.yaml, line 3: found duplicate key 'learning_rate' (first given at line 2)"]
    elif where == "config_path_hardware":  # a site's own profile in $ALGOPERF_CONFIG_PATH
        site = tmp_path / "site"
        (site / "hardware").mkdir(parents=True)
        profile = (FIXTURES / "conf" / "hardware" / "test.yaml").read_text()
        (site / "hardware" / "dup.yaml").write_text(profile.replace("name: test\n", "name: a\nname: dup\n"))
        monkeypatch.setenv("ALGOPERF_CONFIG_PATH", f"{FIXTURES / 'conf'}{os.pathsep}{site}")
        extra = ["hardware=dup"]
        fragments = ["hardware/dup.yaml, line 3: found duplicate key name"]
    elif where == "conf_config.yaml":  # OmegaConf itself refuses duplicates in conf/ files
        conf = _copy_conf(
            tmp_path, "config.yaml", (REPO_ROOT / "conf" / "config.yaml").read_text() + "seed: 1\n"
        )
        monkeypatch.setattr("algoperf.config.CONF_DIR", conf)
        fragments = ["conf/config.yaml, line", "found duplicate key seed"]
    else:
        conf = _copy_conf(tmp_path, "ruleset/external.yaml", "name: external\nnum_trials: 5\nnum_trials: 6\n")
        monkeypatch.setattr("algoperf.config.CONF_DIR", conf)
        fragments = ["ruleset/external.yaml, line 3: found duplicate key num_trials"]
    err = refused(run_args(results, *extra, submission=submission), capsys, *fragments)
    assert "give each key once" in err
    assert not results.exists()


# ---- 3. paths stay under the results root -------------------------------------------------------------

PATHS = [
    ("sweep=../up", "sweep='../up': is not a plain name"),
    ("sweep=a/b", "sweep='a/b': is not a plain name"),
    ("sweep=.hidden", "sweep='.hidden': is not a plain name"),
    ("sweep=a..b", "sweep='a..b': is not a plain name"),
    ("sweep=", "sweep='': is not a plain name"),
    ("workload=../toy", "workload='../toy': is not a plain name"),
    ("submission=/", "/ is not a submission"),
    ("results_dir=FILE", "is an existing file"),
    ("results_dir=/", "results_dir='/': is the filesystem root"),
    ("results_dir=HOME", "is your home folder itself"),
    ("results_dir=REPO", "is the repository root itself"),
    ("results_dir=REPO/algoperf", "is inside the harness's code (algoperf/)"),
    ("results_dir=REPO/tests/results", "is inside the harness's code (tests/)"),
    ("results_dir=", "results_dir='': is empty"),
    ("data_dir=MISSING", "is not an existing folder"),
]


@pytest.mark.parametrize("command", ["run", "sweep"])
@pytest.mark.parametrize("override, fragment", PATHS, ids=[p[0] for p in PATHS])
def test_paths_cannot_escape_the_results_root(tmp_path, capsys, command, override, fragment):
    results = tmp_path / "results"
    (tmp_path / "a_file").write_text("not a folder")
    override = (
        override.replace("FILE", str(tmp_path / "a_file"))
        .replace("HOME", str(Path.home()))
        .replace("REPO", str(REPO_ROOT))
        .replace("MISSING", str(tmp_path / "missing"))
    )
    key, _, value = override.partition("=")
    if command == "sweep" and key in ("workload", "submission"):
        override = f"{key}s=[{value}]"
        if key == "workload":  # the sweep's own schema checks each name of the list
            fragment = f"workloads=[{value!r}]: {value!r} is not a plain name"
    watched = Path(value) if key == "results_dir" and value and Path(value).is_dir() else None
    before = sorted(os.listdir(watched)) if watched else None
    args = run_args(results, override) if command == "run" else sweep_args(results, override)
    refused(args, capsys, fragment)
    assert not results.exists() and not (tmp_path / "up").exists()
    assert (tmp_path / "a_file").is_file()
    if watched:
        assert sorted(os.listdir(watched)) == before


# ---- 4. budgets and caps are positive -------------------------------------------------------------------

BUDGETS = [
    ("run", "max_submission_time_s=0", "give a finite positive number of seconds"),
    ("run", "max_submission_time_s=-5", "max_submission_time_s=-5.0: is not positive"),
    ("run", "max_submission_time_s=inf", "max_submission_time_s=inf: is not a finite number"),
    ("run", "max_submission_time_s=nan", "is not a finite number"),
    ("run", "max_submission_time_s=abc", "max_submission_time_s='abc': is not a number"),
    ("run", "max_steps=0", "max_steps=0: is not positive; give a positive integer"),
    ("run", "max_steps=1.5", "max_steps=1.5: is not an integer"),
    ("run", "eval_every_steps=-5", "eval_every_steps=-5"),
    ("run", "step_hint=0", "step_hint=0"),
    ("run", "threads=0", "threads=0"),
    ("run", "threads=1.5", "threads=1.5"),
    ("sweep", "max_steps=0", "max_steps=0"),
    ("sweep", "num_studies=0", "num_studies=0: is not positive; give a positive integer, e.g. num_studies=3"),
    ("sweep", "num_trials=abc", "num_trials='abc': is not an integer; give a positive integer"),
    ("sweep", "num_trials=1.5", "num_trials=1.5: is not an integer"),
    ("sweep", "n_jobs=-1", "n_jobs=-1: is not positive"),
    ("sweep", "n_jobs=0", "n_jobs=0: is not positive"),
    ("sweep", "hydra.launcher.n_jobs=x", "hydra.launcher.n_jobs='x'"),
]


@pytest.mark.parametrize("command, override, fragment", BUDGETS)
def test_budgets_and_caps_must_be_positive(tmp_path, capsys, command, override, fragment):
    results = tmp_path / "results"
    args = run_args(results, override) if command == "run" else sweep_args(results, override)
    refused(args, capsys, fragment)
    assert not results.exists()


# ---- 5. study, trial, seed, framework and the switches ------------------------------------------------

SCALARS = [
    ("study=-1", "study=-1: is negative; give a non-negative integer"),
    ("study=1.5", "study=1.5: is not an integer"),
    ("study=true", "study=true: is not an integer"),
    ("trial=-1", "trial=-1: is negative"),
    ("trial=abc", "trial='abc': is not an integer; give a non-negative integer"),
    ("seed=-1", "seed=-1: is negative"),
    ("seed=0.5", "seed=0.5: is not an integer"),
    ("framework=tf", "framework='tf': is not one of torch, jax"),
    ("overwrite=yes", "overwrite='yes': is not true or false; give overwrite=true or overwrite=false"),
    ("stop_at_target=2", "stop_at_target=2: is not true or false"),
    ("progress=maybe", "progress='maybe': is not true or false"),
]


@pytest.mark.parametrize("override, fragment", SCALARS, ids=[s[0] for s in SCALARS])
def test_run_identity_and_switches_are_checked(tmp_path, capsys, override, fragment):
    results = tmp_path / "results"
    refused(run_args(results, override), capsys, fragment)
    assert not results.exists()
    # The valid forms pass: trial may be null, flags are booleans.
    good = ["workload=toy", "submission=x", "trial=null", "seed=0", "framework=jax", "overwrite=true"]
    assert compose(good).trial is None
    with pytest.raises(AlgoperfError, match=r"^study=-1: .*\ntrial=-2: "):  # one line per problem
        RunConfig(workload="toy", submission="x", study=-1, trial=-2, hardware=TOY_PROFILE)


# ---- 6. the schema itself: unknown keys, wrong types, values out of range -----------------------------

SCHEMA = [
    ("run", "seeed=1", ["unknown setting 'seeed'", "Did you mean 'seed'"]),
    ("run", "+lerning_rate=0.1", ["unknown setting 'lerning_rate'"]),
    ("run", "threads_per_trial=1", ["unknown setting 'threads_per_trial'", "'threads'"]),
    ("run", "ruleset.num_trial=3", ["unknown setting 'ruleset.num_trial'", "'ruleset.num_trials'"]),
    (
        "run",
        "hardware.watchdog.grace=1",
        ["unknown setting 'hardware.watchdog.grace'", "'hardware.watchdog.grace_s'"],
    ),
    (
        "run",
        "ruleset.num_trials=many",
        ["ruleset.num_trials='many': is not an integer", "ruleset.num_trials=5"],
    ),
    ("run", "ruleset.num_trials=0", ["ruleset.num_trials=0: is not positive"]),
    (
        "run",
        "ruleset.self_tuning_budget_factor=-1",
        ["ruleset.self_tuning_budget_factor=-1.0: is not positive"],
    ),
    ("run", "hardware.threads_per_trial=0", ["hardware.threads_per_trial=0: is not positive"]),
    ("run", "hparams=5", ["hparams=5: is not a mapping", "hparams.NAME=VALUE"]),
    ("run", "workload=null", ["workload=null: cannot be null", "workload=fashion_mnist"]),
    ("sweep", "num_study=2", ["unknown setting 'num_study'", "Did you mean 'num_studies'"]),
    ("sweep", "ruleset.num_studies=-2", ["ruleset.num_studies=-2: is not positive"]),
    ("sweep", "new_sweep=yes", ["new_sweep='yes': is not true or false"]),
    ("sweep", "frameworks=[tf]", ["frameworks=['tf']: 'tf' is not one of torch, jax", "[torch,jax]"]),
    ("sweep", "frameworks=[]", ["frameworks=[]: is empty"]),
    ("sweep", "n_jobs=two", ["n_jobs='two': is not an integer"]),
]


@pytest.mark.parametrize("command, override, fragments", SCHEMA, ids=[f"{c} {o}" for c, o, _ in SCHEMA])
def test_the_schema_refuses_unknown_keys_wrong_types_and_bad_ranges(
    tmp_path, capsys, command, override, fragments
):
    results = tmp_path / "results"
    args = run_args(results, override) if command == "run" else sweep_args(results, override)
    refused(args, capsys, *fragments)
    assert not results.exists()


def test_a_hardware_profile_is_checked_against_the_schema(tmp_path, capsys, monkeypatch):
    site = tmp_path / "site"
    (site / "hardware").mkdir(parents=True)
    profile = (FIXTURES / "conf" / "hardware" / "test.yaml").read_text()
    (site / "hardware" / "typo.yaml").write_text(profile.replace("threads_per_trial:", "threads_per_trail:"))
    (site / "hardware" / "bad.yaml").write_text(profile.replace("grace_s: 120", "grace_s: soon"))
    monkeypatch.setenv("ALGOPERF_CONFIG_PATH", f"{FIXTURES / 'conf'}{os.pathsep}{site}")
    results = tmp_path / "results"
    refused(
        run_args(results, "hardware=typo"),
        capsys,
        "hardware/typo.yaml: unknown setting 'hardware.threads_per_trail'",
        "Did you mean 'hardware.threads_per_trial'",
    )
    refused(run_args(results, "hardware=bad"), capsys, "hardware/bad.yaml: hardware.watchdog.grace_s='soon'")
    assert not results.exists()


def test_config_yaml_gives_the_schema_defaults():
    """conf/config.yaml documents every key with its default: the same as the schema's, so a
    RunConfig made in Python is the one `algoperf run` composes."""
    composed = compose(["workload=toy", "submission=x", "hardware=test"])
    assert composed == RunConfig(workload="toy", submission="x", hardware=composed.hardware)
