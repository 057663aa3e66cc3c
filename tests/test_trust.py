"""Adversarial submissions: each tries one way to fake a result, and the test fails if it gains.

One test per attack: the clock, the evaluation data, the workload and the record in memory,
work off the clock, the results files, exit codes, other trials' results, and code identity.
"""

import json
import re
import shutil
from pathlib import Path

import pytest
from conftest import FIXTURES, TOY_PROFILE, fixture_submission

from algoperf import results
from algoperf.cli import main
from algoperf.runner import run_trial
from algoperf.schema import HardwareConfig, RunConfig
from algoperf.spec import Hyperparameters


def trial(tmp_path, submission, workload="toy", **kwargs):
    cfg = RunConfig(
        workload=workload,
        submission=fixture_submission(submission) if "/" not in submission else submission,
        hardware=kwargs.pop("hardware", TOY_PROFILE),
        results_dir=str(kwargs.pop("results_dir", tmp_path / "results")),
        threads=1,
        **kwargs,
    )
    return run_trial(cfg, progress=False)


def test_replacing_the_clock_does_not_shrink_the_recorded_time(tmp_path):
    record = trial(tmp_path, "attack_clock", max_steps=20)
    assert record["global_steps"] == 20
    # 20 steps of 50 ms each: the supervisor's clock sees all of it.
    assert record["submission_time_s"] >= 20 * 0.05


def test_no_route_reaches_the_validation_or_test_data(tmp_path, capfd):
    hardware = HardwareConfig(
        name="test",
        workloads={
            "fashion_mnist": {"size": "small", "max_submission_time_s": 60, "eval_every_steps": 10**6}
        },
    )
    record = trial(tmp_path, "attack_peek", workload="fashion_mnist", hardware=hardware, max_steps=1)
    out = capfd.readouterr().out
    assert record["status"] == "budget_exhausted", record["error"]
    assert "PROBED 0 leaks" in out, out
    assert "LEAK" not in out


def test_the_probe_finds_held_out_data_where_it_is_reachable(monkeypatch):
    """Positive control: the same probe, run where the data is (a process that loaded it), finds it."""
    import importlib.util

    from algoperf.plugins import workload_class
    from algoperf.rules import WorkloadView

    spec = importlib.util.spec_from_file_location(
        "probe", FIXTURES / "submissions" / "attack_peek" / "torch.py"
    )
    probe = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(probe)
    workload = workload_class("fashion_mnist", "torch")()
    splits = workload.load_splits()  # noqa: F841 (held in this frame, as an in-process runner would)
    workload.init_model_fn(0)
    found = probe.probe(WorkloadView(workload))
    assert "model_fn.__self__.load_splits" in found and "dataset files on disk" in found


def test_tampering_with_the_workload_or_record_in_memory_changes_nothing(tmp_path):
    record = trial(tmp_path, "attack_workload", max_steps=30)
    assert record["status"] == "budget_exhausted"  # lr 0: it never trains
    assert record["time_to_target_s"] is None and record["steps_to_target"] is None
    assert record["target"] == 0.05 and record["metric_higher_is_better"] is False
    assert record["best_validation"] > 0.05


def test_a_background_thread_is_frozen_while_the_harness_evaluates(tmp_path, capfd):
    record = trial(
        tmp_path, "attack_background", workload="toy_slow_eval", max_steps=50, stop_at_target=False
    )
    counts = [int(n) for n in re.findall(r"BACKGROUND (\d+)", capfd.readouterr().out)]
    assert record["num_evals"] == 5 and record["eval_time_s"] >= 5 * 0.3
    assert len(counts) == 50
    # Between two steps that straddle an evaluation (steps 10|11, 20|21, ...), an unfrozen thread
    # counts ~300 iterations; frozen, it gains no more than between two ordinary steps.
    across_evals = [counts[k] - counts[k - 1] for k in (10, 20, 30, 40)]
    assert max(across_evals) < 30, across_evals


def test_a_worker_that_escapes_its_process_group_fails_the_trial(tmp_path):
    record = trial(tmp_path, str(_escaping_submission(tmp_path)), max_steps=30)
    assert record["status"] == "failed"
    assert "left the worker's process group" in record["error"]


def _escaping_submission(tmp_path: Path) -> Path:
    folder = tmp_path / "escape"
    folder.mkdir()
    (folder / "torch.py").write_text(
        "import os, time, torch\n"
        "def make_optimizer(params, hparams, workload):\n"
        "    if os.fork() == 0:\n"
        "        os.setsid()\n"
        "        time.sleep(60)\n"
        "        os._exit(0)\n"
        "    return torch.optim.SGD(params, lr=0.1), None\n"
    )
    return folder


def test_results_files_are_out_of_the_workers_reach(tmp_path, capfd, monkeypatch):
    root = tmp_path / "results"
    monkeypatch.setenv("ATTACK_RESULTS_ROOT", str(root))
    honest = trial(tmp_path, "sgd", sweep="s")
    competitor = results.trial_dir(root, results.TrialKey("s", "sgd", "toy", "torch", 0, 0)) / "record.json"
    before = competitor.read_bytes()
    attack = trial(tmp_path, "attack_files", sweep="s")
    out = capfd.readouterr().out
    assert "FOUND" not in out, out
    assert competitor.read_bytes() == before
    assert attack["status"] == "reached" and attack["time_to_target_s"] > 0.01
    assert honest["status"] == "reached"
    assert results.load(root).bad_signatures == []
    assert main(["score", str(root), "--measure", "steps"]) == 0


def test_a_worker_exit_code_is_recorded_as_its_failure(tmp_path):
    code = main(
        [
            "sweep",
            "workloads=[toy]",
            f"submissions=[{fixture_submission('attack_exit')}]",
            "hardware=test",
            f"results_dir={tmp_path}",
            "sweep=exit",
            "num_studies=1",
            "num_trials=1",
        ]
    )
    records = list(tmp_path.rglob("record.json"))
    assert len(records) == 1, "the trial must leave a record"
    record = results.read_record(records[0])
    assert record["status"] == "failed" and "exited with code 3" in record["error"]
    assert code == 0  # the sweep itself completed: every trial recorded


def test_other_trials_results_are_unreadable_and_hyperparameters_read_only(tmp_path, capfd, monkeypatch):
    monkeypatch.setenv("ATTACK_RESULTS_ROOT", str(tmp_path / "results"))
    trial(tmp_path, "attack_other_trial", trial=0)
    second = trial(tmp_path, "attack_other_trial", trial=1)
    out = capfd.readouterr().out
    assert "FOUND" not in out and "REWROTE" not in out, out
    from algoperf.tuning import SearchSpace, trial_hparams

    space = SearchSpace.from_yaml(FIXTURES / "submissions" / "attack_other_trial" / "search_space.yaml")
    assert second["hparams"] == trial_hparams(space, "external", 0, 0, 1, {})


def test_hyperparameters_cannot_be_rewritten():
    hp = Hyperparameters({"learning_rate": 0.1})
    for attempt in (
        lambda: setattr(hp, "learning_rate", 1.0),
        lambda: object.__setattr__(hp, "_values", {"learning_rate": 1.0}),
        lambda: hp._values.__setitem__("learning_rate", 1.0),
    ):
        with pytest.raises((AttributeError, TypeError)):
            attempt()
    assert hp.learning_rate == 0.1 and dict(hp) == {"learning_rate": 0.1}


@pytest.mark.parametrize("edit", ["helper.py", "search_space.yaml"])
def test_verify_covers_every_file_of_the_submission(tmp_path, capsys, edit):
    submission = tmp_path / "helper_module"
    shutil.copytree(FIXTURES / "submissions" / "helper_module", submission)
    record = trial(tmp_path, str(submission))
    assert record["status"] == "reached", record["error"]
    assert set(record["submission_files"]) == {"torch.py", "helper.py", "search_space.yaml"}
    assert main(["score", str(tmp_path / "results"), "--verify"]) == 0
    capsys.readouterr()
    with open(submission / edit, "a") as f:
        f.write("\n# tuned after the fact\n")
    assert main(["score", str(tmp_path / "results"), "--verify"]) == 1
    assert edit in capsys.readouterr().out


def test_records_say_how_the_worker_was_confined(tmp_path):
    record = trial(tmp_path, "sgd")
    isolation = record["isolation"]
    assert isolation["separate_process"] is True
    assert str((tmp_path / "results").resolve()) in isolation["hidden"]
    assert isolation["landlock_abi"] >= 1 or isolation["unprivileged_uid"] is not None
    json.dumps(record)  # the record stays plain JSON


def test_a_forged_report_is_a_rule_violation(tmp_path):
    record = trial(tmp_path, "attack_report", max_steps=30)
    assert record["status"] == "failed" and record["time_to_target_s"] is None
    assert "malformed report from the worker: status 'reached'" in record["error"]
