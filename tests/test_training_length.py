"""A plugin's declared training length (`training_steps`): the trial ends when the algorithm is
done, at exactly that step, scored at its final evaluation; a bad declaration is refused with
a message that names the fix. Real trials on the toy workload, in both frameworks."""

import textwrap

import pandas as pd
import pytest

from algoperf import results
from algoperf.runner import run_trial
from algoperf.schema import RunConfig

TORCH_PLUGIN = """
import torch

def make_optimizer(params, hparams, workload):
    return torch.optim.SGD(params, lr=hparams.learning_rate), None

def training_steps(workload, hparams):
    return {steps}
"""

JAX_PLUGIN = """
import optax

def make_optimizer(hparams, workload):
    return optax.sgd(hparams.learning_rate)

def training_steps(workload, hparams):
    return {steps}
"""


def submission(tmp_path, steps, framework="torch", learning_rate=1e-4):
    folder = tmp_path / f"declared_{framework}"
    folder.mkdir(exist_ok=True)
    source = TORCH_PLUGIN if framework == "torch" else JAX_PLUGIN
    (folder / f"{framework}.py").write_text(textwrap.dedent(source.format(steps=steps)))
    (folder / "search_space.yaml").write_text(
        f"learning_rate: {{choices: [{learning_rate}], default: {learning_rate}}}\n"
    )
    return folder


def run(tmp_path, toy_profile, folder, framework="torch"):
    cfg = RunConfig(
        workload="toy",
        submission=str(folder),
        framework=framework,
        hardware=toy_profile,
        results_dir=str(tmp_path / "results"),
        threads=1,
    )
    record = run_trial(cfg, progress=False)
    key = results.TrialKey("default", folder.name, "toy", framework, 0, 0)
    evals = pd.read_csv(results.trial_dir(tmp_path / "results", key) / "evals.csv")
    return record, evals


@pytest.mark.parametrize("framework", ["torch", "jax"])
def test_the_trial_ends_at_the_declared_length(tmp_path, toy_profile, framework):
    if framework == "jax":
        pytest.importorskip("jax")
    # A learning rate too small to reach the toy target: without the declaration the trial
    # would train on for its whole 30 s budget.
    record, evals = run(tmp_path, toy_profile, submission(tmp_path, 25, framework), framework)
    assert record["status"] == "training_complete", record["error"]
    assert record["global_steps"] == 25
    assert list(evals["step"]) == [10, 20, 25]  # the regular evals, then the final one
    assert record["submission_time_s"] < 10


def test_a_trial_that_meets_the_target_at_its_last_step_is_reached(tmp_path, toy_profile):
    # SGD at 0.1 reaches the toy target within 60 steps (the well-behaved reference).
    record, evals = run(tmp_path, toy_profile, submission(tmp_path, 60, learning_rate=0.1))
    assert record["status"] == "reached", record["error"]
    assert record["global_steps"] <= 60 and record["steps_to_target"] == record["global_steps"]


@pytest.mark.parametrize("steps", ["0", "2.5", "'many'", "None", "True"])
def test_a_declaration_that_is_no_step_count_fails_the_trial_with_the_fix(tmp_path, toy_profile, steps):
    record, _ = run(tmp_path, toy_profile, submission(tmp_path, steps))
    assert record["status"] == "failed"
    assert "training_steps(workload, hparams) returned" in record["error"]
    assert "whole number of steps >= 1" in record["error"]
    assert record["global_steps"] == 0
