"""The full-API example submissions behave as their docstrings say, on the toy workload (torch):
schedule-free's evaluation is transparent to its training, and large_batch_adamw trains at the
batch size it asks for with its learning rate and schedule scaled to it."""

from __future__ import annotations

import itertools
import math
from types import SimpleNamespace

import pytest

from algoperf.plugins import find_submission, import_submission_file, workload_class
from algoperf.runner import run_trial
from algoperf.schema import RunConfig
from algoperf.spec import Hyperparameters
from algoperf.tuning import SearchSpace

torch = pytest.importorskip("torch")


def load(name: str):
    source = find_submission(name)
    module = import_submission_file(source, "torch")
    defaults = SearchSpace.from_yaml(source.search_space_path).defaults()
    return module, Hyperparameters(defaults)


def toy_setup(seed: int = 0):
    workload = workload_class("toy", "torch")()
    splits = workload.load_splits()
    train = workload.to_device(splits.train)
    validation = workload.to_device(splits.validation)
    model, model_state = workload.init_model_fn(seed)
    return workload, train, validation, model, model_state


def train_steps(module, hparams, workload, model, model_state, optimizer_state, batches):
    for step, batch in enumerate(batches):
        optimizer_state, model, model_state = module.update_params(
            workload=workload,
            current_param_container=model,
            current_params_types=workload.param_types,
            model_state=model_state,
            hyperparameters=hparams,
            batch=batch,
            loss_type=workload.loss_type,
            optimizer_state=optimizer_state,
            eval_results=[],
            global_step=step,
            rng=step,
        )
    return optimizer_state, model, model_state


def test_schedule_free_evaluates_the_average_and_resumes_training_from_y():
    module, hparams = load("schedule_free_adamw")
    workload, train, validation, model_a, state_a = toy_setup()
    _, _, _, model_b, state_b = toy_setup()
    batches = list(itertools.islice(workload.train_batches(train, 32, seed=1), 6))
    opt_a = module.init_optimizer_state(workload, model_a, state_a, hparams, rng=0)
    opt_b = module.init_optimizer_state(workload, model_b, state_b, hparams, rng=0)

    # A: three steps, an evaluation, three steps. B: six steps, no evaluation.
    opt_a, model_a, state_a = train_steps(module, hparams, workload, model_a, state_a, opt_a, batches[:3])
    y = [p.detach().clone() for p in model_a.parameters()]
    opt_a, model_a, state_a = module.prepare_for_eval(
        workload=workload,
        current_param_container=model_a,
        current_params_types=workload.param_types,
        model_state=state_a,
        hyperparameters=hparams,
        loss_type=workload.loss_type,
        optimizer_state=opt_a,
        eval_results=[],
        global_step=3,
        rng=3,
    )
    x = [p.detach().clone() for p in model_a.parameters()]
    assert any(not torch.allclose(xi, yi) for xi, yi in zip(x, y, strict=True)), (
        "prepare_for_eval must swap the averaged weights x into the model"
    )
    workload.eval_metrics(model_a, state_a, validation)
    opt_a, model_a, _ = train_steps(module, hparams, workload, model_a, state_a, opt_a, batches[3:])
    opt_b, model_b, _ = train_steps(module, hparams, workload, model_b, state_b, opt_b, batches)
    for pa, pb in zip(model_a.parameters(), model_b.parameters(), strict=True):
        torch.testing.assert_close(pa, pb, rtol=1e-5, atol=1e-6)


def with_toy_batch_size(name: str, batch_size: int, tmp_path) -> str:
    """A copy of a submission whose BATCH_SIZES also covers the toy workload (the trial runs in
    its own process, so the copy is edited on disk rather than patched in memory)."""
    import shutil

    folder = tmp_path / name
    shutil.copytree(find_submission(name).folder, folder, ignore=shutil.ignore_patterns("__pycache__"))
    source = (folder / "torch.py").read_text()
    assert "BATCH_SIZES = {" in source
    (folder / "torch.py").write_text(
        source.replace("BATCH_SIZES = {", f'BATCH_SIZES = {{"toy": {batch_size}, ', 1)
    )
    return str(folder)


def test_schedule_free_trial_runs_on_toy(tmp_path, toy_profile):
    record = run_trial(
        RunConfig(
            workload="toy",
            submission=with_toy_batch_size("schedule_free_adamw", 32, tmp_path),
            hardware=toy_profile,
            results_dir=str(tmp_path / "results"),
            threads=1,
            max_steps=30,
        ),
        progress=False,
    )
    assert record["status"] in ("reached", "budget_exhausted"), record["error"]
    assert record["num_evals"] >= 1


def test_large_batch_scales_learning_rate_and_schedule_to_its_batch_size():
    module, hparams = load("large_batch_adamw")
    workload = SimpleNamespace(full_name="fashion_mnist_gelu", default_batch_size=128, step_hint=800)
    batch_size = module.get_batch_size("fashion_mnist_gelu")
    scale = batch_size / 128
    learning_rate, warmup_steps, total_steps = module.scaled_schedule(workload, hparams)
    assert learning_rate == pytest.approx(hparams.learning_rate * math.sqrt(scale))
    assert total_steps == math.ceil(800 / scale)
    assert warmup_steps == int(hparams.warmup_fraction * total_steps)
    with pytest.raises(ValueError, match="BATCH_SIZES"):
        module.get_batch_size("no_such_workload")


def test_large_batch_trial_uses_its_batch_size(tmp_path, toy_profile):
    record = run_trial(
        RunConfig(
            workload="toy",
            submission=with_toy_batch_size("large_batch_adamw", 64, tmp_path),
            hardware=toy_profile,
            results_dir=str(tmp_path / "results"),
            threads=1,
            max_steps=30,
        ),
        progress=False,
    )
    assert record["status"] in ("reached", "budget_exhausted"), record["error"]
    assert record["batch_size"] == 64
