"""Fault injection: each fault is a real trial in a real sweep; nothing is lost or duplicated."""

import json
import os
import signal
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

import pytest
from conftest import fixture_submission
from faults.fault_table import FAULT_ROWS

from algoperf import results
from algoperf.cli import main


def sweep_cmd(root: Path, sweep: str, submission: str = "faulty", trials: int = 1, **extra) -> list:
    args = [
        "sweep",
        "workloads=[toy]",
        f"submissions=[{fixture_submission(submission)}]",
        "hardware=test",
        f"results_dir={root}",
        f"sweep={sweep}",
        "num_studies=1",
        f"num_trials={trials}",
    ]
    return args + [f"{k}={v}" for k, v in extra.items()]


def tally(root: Path, fault: str, expected: int, run_log: Path | None, outcome: str) -> list[dict]:
    recs = []
    for path in root.rglob("record.json"):
        try:
            recs.append(results.read_record(path))
        except results.AlgoperfError:
            recs.append({"path": str(path), "status": "damaged"})
    runs = Counter(run_log.read_text().splitlines()) if run_log and run_log.exists() else Counter()
    FAULT_ROWS.append(
        {
            "fault": fault,
            "expected": expected,
            "recorded": len(recs),
            "lost": max(0, expected - len(recs)),
            "duplicates": sum(n - 1 for n in runs.values() if n > 1),
            "outcome": outcome,
        }
    )
    return recs


@pytest.fixture
def run_log(tmp_path_factory, monkeypatch):
    # Outside the results folder, and named writable: trial workers may write nowhere else.
    folder = tmp_path_factory.mktemp("run_log")
    folder.chmod(0o777)  # for a worker that runs as an unprivileged user
    monkeypatch.setenv("ALGOPERF_TEST_RUN_LOG", str(folder / "runs.log"))
    monkeypatch.setenv("ALGOPERF_WORKER_WRITABLE", str(folder))
    return folder / "runs.log"


INJECTED = [
    ("nan_loss", "diverged", None),
    ("init_optimizer_state", "failed", "injected fault in init_optimizer_state"),
    ("update_params", "failed", "injected fault in update_params"),
    ("data_selection", "failed", "injected fault in data_selection"),
    ("prepare_for_eval", "failed", "injected fault in prepare_for_eval"),
    ("reshape", "failed", "rule violation: the submission changed the model's parameters"),
    ("peek", "failed", "workload.load_splits is not available to submissions"),
    ("hang", "budget_exhausted", "did not stop within"),
    ("memory", "failed", "memory limit exceeded"),
]


@pytest.mark.parametrize("fault, status, message", INJECTED, ids=[f[0] for f in INJECTED])
def test_injected_fault_is_recorded_and_the_sweep_goes_on(tmp_path, run_log, fault, status, message):
    extra = {"hparams.fail_in": fault}
    if fault == "hang":
        extra["max_submission_time_s"] = 2  # the supervisor stops the worker 5 s past its budget
    code = main(sweep_cmd(tmp_path, f"fault_{fault}", **extra))
    recs = tally(tmp_path, f"{fault} in a trial", 1, run_log, "")
    assert len(recs) == 1, f"sweep exit {code}"
    record = recs[0]
    FAULT_ROWS[-1]["outcome"] = record["status"]
    assert record["status"] == status, record["error"]
    if message:
        assert message in record["error"]
    if fault == "nan_loss":
        assert record["global_steps"] == 4  # the NaN step is step index 3


def test_healthy_trial_in_the_same_sweep_still_runs(tmp_path, run_log):
    # A crash in one submission's trial does not stop another's.
    main(sweep_cmd(tmp_path, "mixed", trials=2, **{"hparams.fail_in": "update_params"}))
    main(
        [
            "sweep",
            "workloads=[toy]",
            f"submissions=[{fixture_submission('sgd')}]",
            "hardware=test",
            f"results_dir={tmp_path}",
            "sweep=mixed",
            "num_studies=1",
            "num_trials=2",
        ]
    )
    recs = tally(tmp_path, "crash next to healthy trials", 4, run_log, "")
    statuses = Counter((r["submission"], r["status"]) for r in recs)
    FAULT_ROWS[-1]["outcome"] = ", ".join(f"{s}:{st}" for (s, st) in sorted(statuses))
    assert statuses[("faulty", "failed")] == 2
    assert sum(n for (sub, st), n in statuses.items() if sub == "sgd" and st != "failed") == 2


def test_sigkill_of_the_sweep_then_resume(tmp_path, run_log):
    # Slow evals (0.3 s each, every 5 steps) stretch each trial over a few seconds.
    args = sweep_cmd(
        tmp_path, "killed", trials=3, n_jobs=2, eval_every_steps=5, **{"hparams.fail_in": "none"}
    )
    args[1] = "workloads=[toy_slow_eval]"
    proc = subprocess.Popen(
        [sys.executable, "-m", "algoperf.cli", *args],
        start_new_session=True,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline and not list(tmp_path.rglob(".running")):
        time.sleep(0.1)
    time.sleep(1.0)
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()
    for path in tmp_path.rglob("record.json"):
        json.loads(path.read_text())
    main(args)
    recs = tally(tmp_path, "SIGKILL of the sweep mid-trial, then resume", 3, None, "")
    keys = Counter((r["study"], r["trial"]) for r in recs)
    FAULT_ROWS[-1]["duplicates"] = sum(n - 1 for n in keys.values())
    FAULT_ROWS[-1]["outcome"] = "resumed: " + ", ".join(sorted({r["status"] for r in recs}))
    assert len(keys) == 3 and max(keys.values()) == 1
    # Completed trials are never redone: the run log holds one line per trial at most,
    # except the one(s) interrupted mid-way, which ran again.
    runs = run_log.read_text().splitlines() if run_log.exists() else []
    assert len(runs) <= 3 + 2


def test_two_sweeps_on_one_results_folder(tmp_path, run_log):
    args = sweep_cmd(tmp_path, "twice", trials=4, **{"hparams.fail_in": "none"})
    procs = [
        subprocess.Popen(
            [sys.executable, "-m", "algoperf.cli", *args],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        for _ in range(2)
    ]
    for proc in procs:
        proc.wait(timeout=300)
    main(args)  # whatever one sweep skipped because the other held it is complete by now
    recs = tally(tmp_path, "two sweeps on one folder at once", 4, run_log, "")
    runs = Counter(run_log.read_text().splitlines())
    FAULT_ROWS[-1]["outcome"] = f"{sum(runs.values())} trial runs for 4 trials"
    assert len(recs) == 4
    assert sum(runs.values()) == 4  # no trial ran twice


def test_failure_while_writing_a_record(tmp_path, monkeypatch):
    """A crash between writing the temporary file and renaming it leaves no record.json."""
    from conftest import TOY_PROFILE

    from algoperf.runner import TrialConfig, run_trial

    def broken_replace(src, dst):
        raise OSError("disk full (injected)")

    monkeypatch.setattr(results.os, "replace", broken_replace)
    cfg = TrialConfig(
        workload="toy",
        submission=fixture_submission("sgd"),
        hardware=TOY_PROFILE,
        results_dir=str(tmp_path),
        threads=1,
    )
    with pytest.raises(OSError, match="disk full"):
        run_trial(cfg, progress=False)
    tally(tmp_path, "failure while writing record.json", 0, None, "no partial record")
    assert not list(tmp_path.rglob("record.json"))
    assert not list(tmp_path.rglob(".record.*"))
    monkeypatch.undo()
    assert run_trial(cfg, progress=False)["status"] == "reached"  # the re-run completes it


def test_damaged_and_old_records_are_never_silently_scored(tmp_path, capsys):
    from algoperf.cli import main as cli

    main(sweep_cmd(tmp_path, "damaged", submission="sgd", trials=2))
    paths = sorted(tmp_path.rglob("record.json"))
    paths[0].write_text("{ truncated")
    old = json.loads(paths[1].read_text())
    old["schema_version"] = 0
    paths[1].write_text(json.dumps(old))
    loaded = results.load(tmp_path)
    assert len(loaded.trials) == 0 and len(loaded.skipped) == 2
    code = cli(["score", str(tmp_path / "damaged")])
    err = capsys.readouterr().err
    assert code != 0 and "damaged" in err
    tally(tmp_path, "damaged + old-schema records", 2, None, "skipped with a message")
    FAULT_ROWS[-1]["recorded"] = 2  # both are kept on disk, reported, not scored
    FAULT_ROWS[-1]["lost"] = 0
