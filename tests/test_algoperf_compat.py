"""Submissions written for MLCommons AlgoPerf run as they are (algoperf.compat).

The fixtures in tests/fixtures/algoperf_style are the project's own code written in AlgoPerf's
API, one per era and style: PyTorch v0.6 and v0.5 (with a helper module), self-tuning PyTorch,
JAX v0.6 (jit, shardings) and JAX v0.5 (pmap), each with one of AlgoPerf's search-space forms.
They train on the toy workload in both frameworks; the tests check each AlgoPerf idiom they use.
"""

import csv
import json
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import FIXTURES, TOY_PROFILE

from algoperf.cli import main
from algoperf.compat import describe
from algoperf.errors import AlgoperfError
from algoperf.plugins import find_submission, load_submission
from algoperf.runner import run_trial
from algoperf.schema import RunConfig

STYLE = FIXTURES / "algoperf_style"


def fixture(name: str) -> str:
    return str(STYLE / name)


def trial(tmp_path, submission, **kwargs):
    cfg = RunConfig(
        workload=kwargs.pop("workload", "toy"),
        submission=submission,
        hardware=kwargs.pop("hardware", TOY_PROFILE),
        results_dir=str(kwargs.pop("results_dir", tmp_path / "results")),
        threads=1,
        **kwargs,
    )
    return run_trial(cfg, progress=False)


# ---- recognising an AlgoPerf submission -----------------------------------------------------------


@pytest.mark.parametrize(
    "name, framework, pmap, package",
    [
        ("torch_v06", "torch", False, "algoperf"),
        ("torch_v05", "torch", False, "algorithmic_efficiency"),
        ("torch_self_tuning", "torch", False, "algoperf"),
        ("jax_jit", "jax", False, "algoperf"),
        ("jax_pmap", "jax", True, "algorithmic_efficiency"),
    ],
)
def test_framework_and_style_are_read_from_the_source(name, framework, pmap, package):
    source = find_submission(fixture(name))
    assert source.is_algoperf and source.name == name
    assert source.frameworks == [framework] and source.default_framework == framework
    described = describe(source.algoperf_entry)
    assert (described.framework, described.pmap, described.package) == (framework, pmap, package)


def test_the_framework_import_decides_over_a_borrowed_library(tmp_path):
    """A PyTorch submission that borrows optax's schedules is still a PyTorch submission."""
    folder = tmp_path / "torch_with_optax"
    folder.mkdir()
    text = (STYLE / "torch_v06" / "submission.py").read_text()
    (folder / "submission.py").write_text("import optax  # noqa: F401\n" + text)
    assert find_submission(str(folder)).frameworks == ["torch"]


def test_a_submission_file_named_by_path_is_named_after_itself(tmp_path):
    target = tmp_path / "baselines"
    target.mkdir()
    (target / "pytorch_adam.py").write_text((STYLE / "torch_v06" / "submission.py").read_text())
    source = find_submission(str(target / "pytorch_adam.py"))
    assert source.name == "pytorch_adam" and source.folder == target.resolve()
    assert source.file("torch") == (target / "pytorch_adam.py").resolve()


def test_the_harness_own_full_api_submissions_are_not_taken_for_algoperf_ones():
    """They import `algoperf` too and define update_params; torch.py / jax.py and imports of the
    harness's own modules say whose they are."""
    from algoperf.plugins import REPO_ROOT

    folder = REPO_ROOT / "submissions" / "schedule_free_adamw"
    for path in (folder, folder / "torch.py"):
        assert not find_submission(str(path)).is_algoperf


def test_run_without_framework_uses_the_submissions_own(tmp_path):
    from algoperf.config import compose

    assert compose(["workload=toy", f"submission={fixture('jax_jit')}"]).framework == "jax"
    assert compose(["workload=toy", f"submission={fixture('torch_v05')}"]).framework == "torch"
    assert compose(["workload=toy", "submission=adamw"]).framework == "torch"


def test_the_wrong_framework_is_refused_naming_the_right_one(capsys):
    code = main(["check", fixture("jax_pmap"), "--framework", "torch", "--workload", "toy"])
    out = capsys.readouterr().out
    assert code != 0
    assert "AlgoPerf submission written for jax" in out and "framework=jax" in out


def test_a_run_in_the_wrong_framework_is_refused_before_anything_is_written(tmp_path):
    from algoperf.plugins import REPO_ROOT

    with pytest.raises(AlgoperfError, match="written for jax .*run it with framework=jax"):
        trial(tmp_path, fixture("jax_pmap"), framework="torch")
    only_jax = tmp_path / "only_jax"
    only_jax.mkdir()
    (only_jax / "jax.py").write_text((REPO_ROOT / "submissions" / "adamw" / "jax.py").read_text())
    with pytest.raises(AlgoperfError, match="has no torch implementation.*Use framework=jax"):
        trial(tmp_path, str(only_jax), framework="torch")
    assert not (tmp_path / "results").exists()


# ---- imports ---------------------------------------------------------------------------------------


def test_algoperf_imports_reach_the_api_and_leave_the_harness_alone():
    import algoperf.spec as harness_spec

    module = load_submission(find_submission(fixture("torch_v06")), "torch").compat.module
    spec = module.spec
    assert spec.__name__ == "algoperf.compat.api.spec"
    assert {"ParameterContainer", "OptimizerState", "RandomState", "ShapeTuple"} <= set(vars(spec))
    assert spec.ParameterType.LAYER_NORM_SCALE.name == "LAYER_NORM_SCALE"
    assert sys.modules["algoperf.spec"] is harness_spec and not hasattr(harness_spec, "ParameterContainer")
    # AlgoPerf's error ends a trial the way the harness's own does.
    from algoperf.spec import TrainingComplete

    assert issubclass(spec.TrainingCompleteError, TrainingComplete)


def test_pre_v06_package_name_and_a_helper_module_by_repository_path():
    module = load_submission(find_submission(fixture("torch_v05")), "torch").compat.module
    assert module.spec.__name__ == "algoperf.compat.api.spec"
    assert module.NesterovSGD.__module__.endswith(".nesterov_sgd")
    assert "submissions" not in sys.modules  # the repository path was not imported as a package


def test_a_helper_never_shadows_an_installed_package(tmp_path):
    folder = tmp_path / "shadow"
    folder.mkdir()
    (folder / "absl.py").write_text("raise RuntimeError('the helper shadowed absl')\n")
    source = (STYLE / "torch_v06" / "submission.py").read_text()
    (folder / "submission.py").write_text(source)
    module = load_submission(find_submission(str(folder)), "torch").compat.module
    assert module.logging.__name__ == "absl.logging"  # `from absl import logging`: the package


def test_an_algoperf_module_the_harness_does_not_offer_is_named(tmp_path):
    folder = tmp_path / "uses_workloads"
    folder.mkdir()
    text = (STYLE / "torch_v06" / "submission.py").read_text()
    (folder / "submission.py").write_text("from algoperf.workloads.wmt import wmt_pytorch\n" + text)
    with pytest.raises(AlgoperfError, match=r"algoperf\.workloads\.wmt.*not AlgoPerf's 'workloads\.wmt'"):
        load_submission(find_submission(str(folder)), "torch")


def test_a_missing_package_is_named_with_the_command_that_installs_it(capsys):
    code = main(["check", fixture("broken_missing_package"), "--workload", "toy"])
    out = capsys.readouterr().out
    assert code != 0
    assert "The package 'jraph_not_installed_pkg' is not installed" in out
    assert f"{Path(sys.executable).parent / 'pip'} install jraph_not_installed_pkg" in out
    assert "training steps" not in out


def test_the_import_hint_for_a_file_named_torch_works_as_written(tmp_path):
    """A harness submission's torch.py that fails to import: the hint's command reproduces the
    failure itself, not a different one from the file shadowing the torch package."""
    folder = tmp_path / "fails_on_import"
    folder.mkdir()
    (folder / "torch.py").write_text("import torch\nraise ValueError('the real failure')\n")
    with pytest.raises(AlgoperfError) as error:
        load_submission(find_submission(str(folder)), "torch")
    message = str(error.value)
    hint = message.split("(`", 1)[1].split("`)", 1)[0]
    assert hint.split()[1] == "-P"
    result = subprocess.run(
        [sys.executable, *hint.split()[1:]], capture_output=True, text=True, cwd=tmp_path, check=False
    )
    assert "ValueError: the real failure" in result.stderr, result.stderr


# ---- the workload an AlgoPerf submission sees ------------------------------------------------------


@pytest.mark.parametrize("framework", ["torch", "jax"])
def test_param_shapes_and_types_are_laid_out_as_algoperf_does(framework):
    from algoperf.compat.workload import AlgoperfWorkload, TrialTimes
    from algoperf.plugins import workload_class
    from algoperf.rules import WorkloadView

    workload = workload_class("toy", framework)()
    params, _ = workload.init_model_fn(0)
    ours = AlgoperfWorkload(WorkloadView(workload), framework, TrialTimes(30.0, None))
    ours.bind_params(params)
    spec = load_submission(find_submission(fixture("torch_v06")), "torch").compat.module.spec
    if framework == "torch":
        names = [name for name, _ in params.named_parameters()]
        assert list(ours.param_shapes) == names == list(ours.model_params_types)
        shapes = {name: p.shape for name, p in params.named_parameters()}
    else:
        import jax

        # Trees shaped like the parameters, with ShapeTuple / ParameterType leaves.
        assert jax.tree.structure(ours.param_shapes) == jax.tree.structure(params)
        assert jax.tree.structure(ours.model_params_types) == jax.tree.structure(params)
        from algoperf.frameworks.jax import flatten_params

        shapes = {name: leaf.shape for name, leaf in flatten_params(params).items()}
        assert flatten_params(ours.param_shapes).keys() == shapes.keys()
    leaves = (
        ours.param_shapes.values()
        if framework == "torch"
        else __import__("jax").tree.leaves(
            ours.param_shapes, is_leaf=lambda x: isinstance(x, spec.ShapeTuple)
        )
    )
    assert sorted(leaf.shape_tuple for leaf in leaves) == sorted(tuple(s) for s in shapes.values())
    kinds = set(
        ours.model_params_types.values()
        if framework == "torch"
        else __import__("jax").tree.leaves(ours.model_params_types)
    )
    assert kinds == {spec.ParameterType.WEIGHT, spec.ParameterType.BIAS}
    assert ours.loss_type is spec.LossType.MEAN_SQUARED_ERROR and ours.max_allowed_runtime_sec == 30.0
    with pytest.raises(AttributeError, match="not available to submissions"):
        ours.load_splits  # noqa: B018 (the harness's visibility rule still applies)
    with pytest.raises(AttributeError, match="fixed by the benchmark"):
        ours.metrics_logger = None


def test_train_state_is_read_only_and_counts_submission_time():
    from algoperf.compat.workload import TrialTimes
    from algoperf.plugins import workload_class
    from algoperf.rules import WorkloadView

    adapter = load_submission(find_submission(fixture("torch_v06")), "torch").compat
    adapter.configure(WorkloadView(workload_class("toy", "torch")()), TrialTimes(30.0, None))
    adapter.interval_started(12.5)
    state = adapter._train_state()
    assert state["accumulated_submission_time"] >= 12.5
    assert state["validation_goal_reached"] is False and state["is_time_remaining"] is True
    with pytest.raises(TypeError):
        state["training_complete"] = True  # type: ignore[index]


# ---- whole trials ----------------------------------------------------------------------------------


@pytest.mark.slow
@pytest.mark.parametrize("name", ["torch_v06", "torch_v05", "torch_self_tuning", "jax_jit", "jax_pmap"])
def test_each_style_trains_and_says_what_the_harness_did(tmp_path, name):
    record = trial(tmp_path, fixture(name), max_steps=25)
    assert record["status"] == "budget_exhausted", record["error"]
    assert record["global_steps"] == 25 and record["num_evals"] >= 2
    assert record["framework"] == describe(find_submission(fixture(name)).algoperf_entry).framework
    adaptations = "\n".join(record["adaptations"])
    assert "AlgoPerf v0." in adaptations
    # get_batch_size raises for a workload AlgoPerf does not have: the default, said once.
    assert (
        "get_batch_size('toy') raised ValueError" in adaptations and "default batch size, 32" in adaptations
    )
    assert record["batch_size"] == 32
    if name == "jax_pmap":
        assert "pmap style" in adaptations and "jax.tree_map" in adaptations
    # What the submission logged through workload.metrics_logger (every 10 steps), kept beside
    # the evals.
    if name in ("torch_v06", "jax_pmap", "jax_jit"):
        folder = next((tmp_path / "results").rglob("record.json")).parent
        with open(folder / "submission_metrics.csv") as f:
            rows = list(csv.DictReader(f))
        assert {row["name"] for row in rows} == {"loss", "grad_norm"}
        assert sorted({int(row["step"]) for row in rows}) == [0, 10, 20]
    # The first eval's metric improved on nothing yet; training must have moved it.
    if name != "torch_self_tuning":
        assert record["hparams"], record
    else:
        assert record["hparams"] == {}  # self-tuning: AlgoPerf passes hyperparameters=None


@pytest.mark.slow
def test_training_complete_error_ends_the_trial(tmp_path):
    points = json.loads((STYLE / "torch_v05" / "tuning_search_space.json").read_text())
    space = tmp_path / "stop_early.json"
    space.write_text(json.dumps([{**points[0], "stop_after_steps": 7}]))
    record = trial(tmp_path, fixture("torch_v05"), search_space=str(space), max_steps=50)
    assert record["status"] == "training_complete", record["error"]
    assert record["global_steps"] == 7  # steps 0..6 ran; step 7 raised before updating
    assert record["hparams"]["stop_after_steps"] == 7


@pytest.mark.slow
def test_a_dropout_rate_the_model_cannot_honour_is_refused_clearly(tmp_path):
    """A model without dropout layers: torch_v06 asking for 0.1 fails with the reason."""
    record = trial(
        tmp_path, fixture("torch_v06"), workload="toy_no_dropout", hparams={"dropout_rate": 0.1}, max_steps=3
    )
    assert record["status"] == "failed"
    assert "has no dropout layers: dropout_rate=0.1 cannot be honoured" in record["error"]


@pytest.mark.slow
def test_a_known_workload_gets_the_submissions_batch_size(tmp_path):
    folder = tmp_path / "knows_toy"
    folder.mkdir()
    text = (STYLE / "torch_v06" / "submission.py").read_text()
    (folder / "submission.py").write_text(
        text.replace("def get_batch_size(workload_name", "def _algoperf_batch_size(workload_name")
        + "\n\ndef get_batch_size(workload_name):\n"
        "    return 16 if workload_name == 'toy' else _algoperf_batch_size(workload_name)\n"
    )
    (folder / "tuning_search_space.json").write_text(
        (STYLE / "torch_v06" / "tuning_search_space.json").read_text()
    )
    record = trial(tmp_path, str(folder), max_steps=3)
    assert record["status"] == "budget_exhausted", record["error"]
    assert record["batch_size"] == 16
    assert not any("get_batch_size" in line for line in record["adaptations"])


# ---- compilation: no more than natively -------------------------------------------------------------


def _compiles_per_step(name: str, steps: int = 5) -> list[int]:
    from algoperf.compat.workload import TrialTimes
    from algoperf.frameworks.jax import BACKEND as fw
    from algoperf.frameworks.jax import compile_count
    from algoperf.plugins import workload_class
    from algoperf.rules import WorkloadView
    from algoperf.spec import Hyperparameters
    from algoperf.tuning import load_search_space

    source = find_submission(fixture(name))
    submission = load_submission(source, "jax")
    workload = workload_class("toy", "jax")()
    view = WorkloadView(workload)
    splits = workload.load_splits()
    params, model_state = workload.init_model_fn(0)
    submission.compat.configure(view, TrialTimes(30.0, None))
    hparams = Hyperparameters(load_search_space(source.folder).defaults())
    queue = workload.train_batches(workload.to_device(splits.train), 32, 0)
    state = submission.init_optimizer_state(
        workload=view,
        model_params=params,
        model_state=model_state,
        hyperparameters=hparams,
        rng=fw.step_rng(1, -1),
    )
    counts = []
    for step in range(steps):
        before = compile_count()
        batch = submission.data_selection(
            workload=view,
            input_queue=queue,
            optimizer_state=state,
            current_param_container=params,
            model_state=model_state,
            hyperparameters=hparams,
            global_step=step,
            rng=fw.step_rng(1, 2 * step),
        )
        state, params, model_state = submission.update_params(
            workload=view,
            current_param_container=params,
            current_params_types=workload.param_types,
            model_state=model_state,
            hyperparameters=hparams,
            batch=batch,
            loss_type=workload.loss_type,
            optimizer_state=state,
            eval_results=[],
            global_step=step,
            rng=fw.step_rng(1, 2 * step + 1),
        )
        fw.sync(params, state)
        counts.append(compile_count() - before)
    return counts


@pytest.mark.parametrize("name", ["jax_jit", "jax_pmap"])
def test_the_train_step_compiles_once(name):
    counts = _compiles_per_step(name)
    assert counts[0] >= 1 and counts[1:] == [0] * (len(counts) - 1), counts


def test_without_placing_the_state_the_jit_step_compiles_twice(monkeypatch):
    """The placement is what saves the second compilation (this test fails if it stops mattering,
    so the one above keeps meaning something)."""
    from algoperf.compat import adapter

    monkeypatch.setattr(adapter._Devices, "place", lambda self, tree: tree)
    monkeypatch.setattr(adapter._Devices, "placed", lambda self, tree: tree)
    counts = _compiles_per_step("jax_jit")
    assert counts[1] >= 1, counts


@pytest.mark.slow
def test_v05_dropout_hyperparameters_apply_as_algoperfs_runner_applied_them(tmp_path):
    """Before v0.6 AlgoPerf's runner built the model with the hyperparameters' dropout_rate;
    the submission never passes one. Both toy models have dropout; toy_no_dropout's has none."""
    points = json.loads((STYLE / "jax_pmap" / "tuning_search_space.json").read_text())
    space = tmp_path / "with_dropout.json"
    space.write_text(json.dumps([{**points[0], "dropout_rate": 0.1, "aux_dropout_rate": 0.1}]))
    record = trial(tmp_path, fixture("jax_pmap"), search_space=str(space), max_steps=5)
    assert record["status"] == "budget_exhausted", record["error"]
    adaptations = "\n".join(record["adaptations"])
    assert "dropout_rate=0.1 applies to every forward pass" in adaptations
    assert "aux_dropout_rate=0.1 is not used" in adaptations

    points = json.loads((STYLE / "torch_v05" / "tuning_search_space.json").read_text())
    space.write_text(json.dumps([{**points[0], "dropout_rate": 0.1}]))
    record = trial(tmp_path, fixture("torch_v05"), search_space=str(space), max_steps=5, sweep="torch")
    assert record["status"] == "budget_exhausted", record["error"]
    assert "dropout_rate=0.1 applies to every forward pass" in "\n".join(record["adaptations"])

    record = trial(
        tmp_path,
        fixture("torch_v05"),
        workload="toy_no_dropout",
        search_space=str(space),
        max_steps=5,
        sweep="torch_no_dropout",
    )
    assert record["status"] == "failed"
    assert "has no dropout layers: dropout_rate=0.1 cannot be honoured" in record["error"]


# ---- AlgoPerf's helper modules and the check's explanations ------------------------------------


def test_api_helper_modules_do_what_algoperfs_do():
    import jax
    import jax.numpy as jnp
    import torch

    from algoperf.compat.api import jax_sharding_utils, jax_utils, param_utils, pytorch_utils, random_utils
    from algoperf.compat.api.spec import ParameterType, ShapeTuple

    assert pytorch_utils.pytorch_setup()[:2] == (False, 0)
    model = torch.nn.Sequential(torch.nn.Linear(3, 4), torch.nn.LayerNorm(4))
    shapes = param_utils.pytorch_param_shapes(model)
    assert shapes["0.weight"] == ShapeTuple((4, 3)) and shapes["1.bias"] == ShapeTuple((4,))
    assert list(shapes) == ["0.weight", "0.bias", "1.weight", "1.bias"]
    params = {"Dense_0": {"kernel": jnp.zeros((3, 4)), "bias": jnp.zeros(4)}}
    assert param_utils.jax_param_shapes(params)["Dense_0"]["kernel"] == ShapeTuple((3, 4))
    assert (
        param_utils.jax_param_types(param_utils.jax_param_shapes(params))["Dense_0"]["bias"]
        is ParameterType.BIAS
    )
    replicated = jax_sharding_utils.replicate(jnp.ones((4, 2)))
    assert replicated.sharding.is_fully_replicated
    assert jax_sharding_utils.shard_along_batch_dim(jnp.ones((4, 2))).shape == (4, 2)
    key = random_utils.PRNGKey(0)
    assert random_utils.split(key, 3).shape[0] == 3
    dropout = jax_utils.Dropout(rate=0.5)
    x = jnp.ones((1000,))
    kept = dropout.apply({}, x, deterministic=False, rngs={"dropout": jax.random.PRNGKey(1)})
    assert 0.4 < float((kept == 0).mean()) < 0.6 and float(kept.max()) == 2.0
    assert (dropout.apply({}, x, deterministic=True) == x).all()
    assert (dropout.apply({}, x, deterministic=False, rate=0.0) == x).all()


def test_check_explains_an_algoperf_era_symptom(tmp_path, capsys):
    folder = tmp_path / "flat_shapes"
    folder.mkdir()
    text = (STYLE / "torch_v06" / "submission.py").read_text()
    (folder / "submission.py").write_text(
        text.replace("def update_params(", "def _update_params(")
        + "\n\ndef update_params(workload, current_param_container, current_params_types,\n"
        "                  model_state, hyperparameters, batch, loss_type, optimizer_state,\n"
        "                  eval_results, global_step, rng):\n"
        "    return {name: shape.shape_tuple for name, shape in {'w': 3}.items()}\n"
    )
    (folder / "tuning_search_space.json").write_text(
        (STYLE / "torch_v06" / "tuning_search_space.json").read_text()
    )
    code = main(["check", str(folder), "--workload", "toy"])
    out = capsys.readouterr().out
    assert code != 0
    assert "'int' object has no attribute 'shape_tuple'" in out
    assert "what that means: workload.param_shapes was read as a flat mapping" in out


@pytest.mark.slow
def test_a_complete_trial_asked_for_with_another_search_space_is_refused(tmp_path):
    points = json.loads((STYLE / "torch_v05" / "tuning_search_space.json").read_text())
    space = tmp_path / "other.json"
    space.write_text(json.dumps([{**points[0], "learning_rate": 0.5}]))
    first = trial(tmp_path, fixture("torch_v05"), trial=0, max_steps=2)
    assert first["hparams"] == points[0]
    with pytest.raises(AlgoperfError, match=r"hparams\.learning_rate: recorded 0\.05, requested 0\.5"):
        trial(tmp_path, fixture("torch_v05"), trial=0, max_steps=2, search_space=str(space))


@pytest.mark.slow
def test_a_sweep_runs_an_algoperf_submission_point_by_point(tmp_path, capsys):
    """`sweep` takes the folder by path; under ruleset=external a 3-point list with num_trials=5
    runs the 3 points, trial k on exactly point k, in the submission's framework. (`run` with
    trial=k: tests/test_search_space_json.py.)"""
    points = json.loads((STYLE / "torch_v05" / "tuning_search_space.json").read_text())
    args = [
        "sweep",
        "workloads=[toy]",
        f"submissions=[{fixture('torch_v05')}]",
        "hardware=test",
        f"results_dir={tmp_path}",
        "sweep=compat",
        "num_studies=1",
        "num_trials=5",
        "max_steps=3",
    ]
    assert main(args) == 0, capsys.readouterr().err
    assert "lists 3 points; num_trials=5 runs 3 trials per study" in capsys.readouterr().out
    records = sorted(
        (json.loads(p.read_text()) for p in tmp_path.rglob("record.json")), key=lambda r: r["trial"]
    )
    assert [r["trial"] for r in records] == [0, 1, 2]
    assert [r["hparams"] for r in records] == points
    assert {r["status"] for r in records} == {"budget_exhausted"} and {r["framework"] for r in records} == {
        "torch"
    }
