"""The timing ledger and trial statuses, on the toy workload (fast, real trials)."""

import pandas as pd
import pytest
from conftest import fixture_submission

from algoperf import results
from algoperf.runner import run_trial
from algoperf.schema import RunConfig


def run(tmp_path, toy_profile, submission="sgd", workload="toy", **kwargs):
    cfg = RunConfig(
        workload=workload,
        submission=fixture_submission(submission),
        hardware=toy_profile,
        results_dir=str(tmp_path),
        threads=1,
        **kwargs,
    )
    return run_trial(cfg, progress=False)


def test_reaches_target_and_writes_complete_record(tmp_path, toy_profile):
    record = run(tmp_path, toy_profile)
    assert record["status"] == "reached", record["error"]
    assert record["steps_to_target"] > 0 and record["steps_to_target"] % 10 == 0
    assert record["time_to_target_s"] == pytest.approx(record["submission_time_s"])
    assert set(results.RECORD_FIELDS) <= set(record)
    on_disk = results.read_record(
        results.trial_dir(tmp_path, results.TrialKey("default", "sgd", "toy", "torch", 0, 0)) / "record.json"
    )
    assert on_disk["status"] == "reached"
    evals = pd.read_csv(
        results.trial_dir(tmp_path, results.TrialKey("default", "sgd", "toy", "torch", 0, 0)) / "evals.csv"
    )
    assert list(evals["step"]) == list(range(10, record["steps_to_target"] + 1, 10))
    assert evals["validation_metric"].iloc[-1] <= 0.05


def test_eval_time_is_not_submission_time(tmp_path, toy_profile):
    fast = run(tmp_path / "a", toy_profile, workload="toy")
    slow = run(tmp_path / "b", toy_profile, workload="toy_slow_eval")
    assert slow["steps_to_target"] == fast["steps_to_target"]
    evals = slow["num_evals"]
    assert slow["eval_time_s"] >= 0.3 * evals
    # Sleeping 0.3 s per eval adds nothing to submission time (allow scheduling noise).
    assert slow["submission_time_s"] < fast["submission_time_s"] + 0.1 * evals
    assert slow["wall_time_s"] > slow["submission_time_s"] + slow["eval_time_s"] * 0.9


def test_same_seed_same_result(tmp_path, toy_profile):
    a = run(tmp_path / "a", toy_profile)
    b = run(tmp_path / "b", toy_profile)
    assert a["steps_to_target"] == b["steps_to_target"]
    ea = pd.read_csv(
        results.trial_dir(tmp_path / "a", results.TrialKey("default", "sgd", "toy", "torch", 0, 0))
        / "evals.csv"
    )
    eb = pd.read_csv(
        results.trial_dir(tmp_path / "b", results.TrialKey("default", "sgd", "toy", "torch", 0, 0))
        / "evals.csv"
    )
    assert ea["validation_metric"].tolist() == eb["validation_metric"].tolist()
    run(tmp_path / "c", toy_profile, seed=1)
    ec = pd.read_csv(
        results.trial_dir(tmp_path / "c", results.TrialKey("default", "sgd", "toy", "torch", 0, 0))
        / "evals.csv"
    )
    assert ec["validation_metric"].tolist() != ea["validation_metric"].tolist()


def test_nan_loss_is_diverged(tmp_path, toy_profile):
    record = run(tmp_path, toy_profile, submission="nan_loss")
    assert record["status"] == "diverged"
    assert record["global_steps"] < 10


def test_exception_is_failed_with_traceback(tmp_path, toy_profile):
    record = run(tmp_path, toy_profile, submission="raises")
    assert record["status"] == "failed"
    assert "boom at step 3" in record["error"] and "Traceback" in record["error"]
    assert record["global_steps"] == 2
    assert results.is_complete(
        results.trial_dir(tmp_path, results.TrialKey("default", "raises", "toy", "torch", 0, 0))
    )


def test_budget_exhausted_within_one_step(tmp_path, toy_profile):
    record = run(tmp_path, toy_profile, submission="slow", max_submission_time_s=1.0)
    assert record["status"] == "budget_exhausted"
    # Each step takes 0.2 s: the trial stops on the first step that crosses the budget.
    assert 1.0 <= record["submission_time_s"] < 1.0 + 0.2 + 0.1
    assert record["global_steps"] == 5


def test_training_complete(tmp_path, toy_profile):
    record = run(tmp_path, toy_profile, submission="complete_early")
    assert record["status"] == "training_complete"
    assert record["global_steps"] == 5
    assert record["batch_size"] == 16
    assert record["num_evals"] == 1  # the final eval


def test_complete_trial_is_not_rerun(tmp_path, toy_profile):
    first = run(tmp_path, toy_profile)
    second = run(tmp_path, toy_profile)
    assert second["started_at"] == first["started_at"]


def test_distinct_trials_get_distinct_seeds(tmp_path, toy_profile):
    seeds = {run(tmp_path, toy_profile, trial=k, max_steps=1)["seed"] for k in range(3)}
    seeds |= {run(tmp_path, toy_profile, study=1, trial=k, max_steps=1)["seed"] for k in range(3)}
    assert len(seeds) == 6


def test_prepare_for_eval_is_submission_time(tmp_path, toy_profile):
    record = run(tmp_path, toy_profile, submission="slow_prepare", max_steps=30)
    assert record["num_evals"] == 3
    # Three evals, each after a 0.2 s prepare_for_eval: the submission pays for all three.
    assert record["submission_time_s"] >= 3 * 0.2
    assert record["eval_time_s"] < 0.2


def test_a_target_met_after_the_budget_does_not_count(tmp_path, toy_profile):
    honest = run(tmp_path / "a", toy_profile)
    assert honest["status"] == "reached" and honest["steps_to_target"] == 50
    # The same trajectory, but step 50 stalls 2 s: the eval at step 50 meets the target with
    # the budget (1 s) already spent.
    late = run(tmp_path / "b", toy_profile, submission="late_target", max_submission_time_s=1.0)
    assert late["global_steps"] == 50 and late["best_validation"] <= late["target"]
    assert late["status"] == "budget_exhausted"
    assert late["time_to_target_s"] is None and late["steps_to_target"] is None


def test_ledger_schedule_and_budget():
    from algoperf.ledger import Ledger

    ledger = Ledger(budget_s=10.0, eval_every_steps=100, eval_period_s=None, max_steps=250)
    assert ledger.stop_step() == 100 and ledger.seconds_to_eval() is None
    ledger.add_interval(4.0, 100)
    assert ledger.eval_due and not ledger.over_budget
    ledger.add_eval(3.0)
    assert ledger.stop_step() == 200 and ledger.submission_time_s == 4.0
    ledger.add_interval(4.0, 200)
    ledger.add_eval(1.0)
    assert ledger.stop_step() == 250  # the step cap comes first
    ledger.add_interval(2.5, 250)
    assert ledger.over_budget and ledger.at_step_cap and not ledger.within_budget()
    with pytest.raises(ValueError):
        ledger.add_interval(1.0, 249)

    timed = Ledger(budget_s=100.0, eval_every_steps=None, eval_period_s=30.0)
    assert timed.stop_step() is None and timed.seconds_to_eval() == 30.0
    timed.add_interval(31.0, 70)
    assert timed.eval_due
    timed.add_eval(5.0)
    assert timed.seconds_to_eval() == pytest.approx(30.0) and not timed.eval_due


def test_a_trial_that_trains_on_past_its_target_is_reached(tmp_path, toy_profile):
    first = run(tmp_path / "a", toy_profile)
    on = run(tmp_path / "b", toy_profile, stop_at_target=False, max_steps=first["steps_to_target"] + 40)
    assert on["status"] == "reached"
    # the same seed meets the target at the same step; the time is the one of that eval
    assert on["steps_to_target"] == first["steps_to_target"]
    assert 0 < on["time_to_target_s"] < on["submission_time_s"]
    assert on["global_steps"] == first["steps_to_target"] + 40


def test_every_status_writes_a_record_the_loader_accepts(tmp_path, toy_profile):
    statuses = {
        run(tmp_path, toy_profile, submission=submission, **kwargs)["status"]
        for submission, kwargs in [
            ("sgd", {}),
            ("sgd", {"trial": 1, "stop_at_target": False, "max_steps": 300}),
            ("nan_loss", {}),
            ("raises", {}),
            ("slow", {"max_submission_time_s": 1.0}),
            ("complete_early", {}),
        ]
    }
    assert statuses == {"reached", "diverged", "failed", "budget_exhausted", "training_complete"}
    loaded = results.load(tmp_path)
    assert loaded.invalid == [] and loaded.bad_signatures == [] and len(loaded.trials) == 6
