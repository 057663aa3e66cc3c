"""Sweeps: a Hydra multirun of real trials, each in its own process; crash-safe and resumable."""

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from conftest import fixture_submission

from algoperf import results
from algoperf.cli import main


def sweep_args(tmp_path, submissions, **extra):
    args = [
        "sweep",
        "workloads=[toy]",
        f"submissions=[{','.join(fixture_submission(s) for s in submissions)}]",
        "hardware=test",
        f"results_dir={tmp_path}",
        "sweep=t",
    ]
    return args + [f"{k}={v}" for k, v in extra.items()]


def records(root: Path) -> list[dict]:
    return [results.read_record(p) for p in sorted(root.rglob("record.json"))]


def test_sweep_runs_every_trial_and_survives_crashes(tmp_path, capsys):
    code = main(sweep_args(tmp_path, ["sgd", "raises", "hard_crash"], num_studies=2, num_trials=1, n_jobs=2))
    out = capsys.readouterr().out
    recs = records(tmp_path)
    assert len(recs) == 6
    by_sub = {}
    for r in recs:
        by_sub.setdefault(r["submission"], set()).add(r["status"])
    assert by_sub["raises"] == {"failed"}
    assert by_sub["hard_crash"] == {"failed"}
    assert "reached" in by_sub["sgd"]
    crash = next(r for r in recs if r["submission"] == "hard_crash")
    assert "SIGKILL" in crash["error"]
    assert "[sweep] finished" in out and code == 0
    # Each study scrambles its own Halton sequence: distinct points and seeds.
    sgd = [r for r in recs if r["submission"] == "sgd"]
    assert len({r["hparams"]["learning_rate"] for r in sgd}) == 2
    assert len({r["seed"] for r in sgd}) == 2


def test_rerun_skips_complete_trials(tmp_path, capsys):
    main(sweep_args(tmp_path, ["sgd"], num_studies=1, num_trials=2, n_jobs=2))
    first = {r["trial"]: r["started_at"] for r in records(tmp_path)}
    main(sweep_args(tmp_path, ["sgd"], num_studies=1, num_trials=2))
    assert "2 already complete" in capsys.readouterr().out
    assert {r["trial"]: r["started_at"] for r in records(tmp_path)} == first


def _eval_rows(directory: Path) -> int:
    try:
        return len((directory / results.EVALS_NAME).read_text().splitlines()) - 1  # less the header
    except OSError:
        return -1


def _mid_trial(directory: Path) -> bool:
    """Claimed, training (an eval written) and not recorded."""
    return (
        (directory / results.RUNNING_NAME).exists()
        and _eval_rows(directory) >= 1
        and not results.is_complete(directory)
    )


def test_sigkill_mid_trial_then_resume(tmp_path):
    """SIGKILL of the whole sweep with one trial recorded and the other mid-way, then a re-run:
    every trial is recorded once, the complete one is not run again.

    No timing is assumed. The two trials, side by side, are of unequal length: `complete_early`
    ends itself after 5 steps; `slow` spends 0.2 s of submission time a step until its 6 s
    budget is spent, so once it has written its first eval (step 5, ~1 s) it has seconds of
    sleep left. The kill waits for exactly that observable state."""
    args = sweep_args(
        tmp_path,
        ["complete_early", "slow"],
        num_studies=1,
        num_trials=1,
        n_jobs=2,
        max_submission_time_s=6,
        eval_every_steps=5,
    )
    proc = subprocess.Popen(
        [sys.executable, "-m", "algoperf.cli", *args],
        start_new_session=True,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    quick = tmp_path / "t" / "complete_early" / "toy" / "torch" / "study_0" / "trial_0"
    slow = tmp_path / "t" / "slow" / "toy" / "torch" / "study_0" / "trial_0"
    try:
        deadline = time.monotonic() + 600  # a guard against a hang only
        while not (results.is_complete(quick) and _mid_trial(slow)):
            assert proc.poll() is None, "the sweep ended before the state to kill it in"
            assert not results.is_complete(slow), "the slow trial finished before the quick one"
            assert time.monotonic() < deadline, "timed out waiting for one trial done, one mid-way"
            time.sleep(0.05)
    finally:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()
    assert not results.is_complete(slow), "the kill should have caught the slow trial in flight"
    for path in tmp_path.rglob("record.json"):
        json.loads(path.read_text())  # no partial record is ever visible
    assert not list(tmp_path.rglob(".record.*.tmp"))
    quick_started = results.read_record(quick / "record.json")["started_at"]

    code = main(args)
    recs = records(tmp_path)
    keys = [(r["submission"], r["study"], r["trial"]) for r in recs]
    assert sorted(keys) == [("complete_early", 0, 0), ("slow", 0, 0)]
    assert code == 0
    by_sub = {r["submission"]: r for r in recs}
    assert by_sub["complete_early"]["started_at"] == quick_started  # not run again
    assert by_sub["complete_early"]["status"] == "training_complete"
    assert by_sub["slow"]["status"] == "budget_exhausted", by_sub["slow"]["error"]


def test_sweep_rejects_bad_names_before_running(tmp_path, capsys):
    args = sweep_args(tmp_path, ["sgd"])
    args[1] = "workloads=[toyy]"
    assert main(args) == 2
    assert "unknown workload 'toyy'" in capsys.readouterr().err
    assert not list(tmp_path.rglob("record.json"))


def test_run_and_sweep_help_list_every_key(capsys):
    from algoperf.sweep import SWEEP_KEYS

    assert main(["run", "--help"]) == 0
    run_help = capsys.readouterr().out
    for key in ("workload:", "submission:", "framework:", "max_submission_time_s:", "threads:"):
        assert key in run_help
    assert main(["sweep", "-h"]) == 0
    sweep_help = capsys.readouterr().out
    assert all(f"{key}=" in sweep_help for key in SWEEP_KEYS) and "max_steps:" in sweep_help


@pytest.mark.parametrize("launcher", ["joblib", "submitit_slurm"])
def test_launcher_configs_compose(launcher):
    from hydra import compose, initialize_config_dir

    from algoperf.config import CONF_DIR

    overrides = ["workload=toy", "submission=x", f"hydra/launcher={launcher}"]
    if launcher == "submitit_slurm":
        overrides = ["workload=toy", "submission=x", "hydra/launcher=slurm"]
    with initialize_config_dir(config_dir=str(CONF_DIR), version_base="1.3"):
        cfg = compose(config_name="config", overrides=overrides, return_hydra_config=True)
    assert cfg.hydra.launcher._target_.endswith("Launcher")
    if launcher == "submitit_slurm":
        assert cfg.hydra.launcher.cpus_per_task >= 1 and "timeout_min" in cfg.hydra.launcher


def test_tiny_sweep_then_score_agrees_with_a_hand_computation(tmp_path, capsys):
    """2 submissions x 1 workload x 2 studies x 2 trials -> algoperf score -> every output, and
    the leaderboard equals the scoring formulas (docs/architecture.md) applied by hand to the records."""
    import math

    import pandas as pd

    args = sweep_args(tmp_path, ["sgd", "momentum"], num_studies=2, num_trials=2, n_jobs=2)
    assert main(args) == 0
    out_dir = tmp_path / "report"
    assert main(["score", str(tmp_path / "t"), "--out", str(out_dir), "--measure", "steps"]) == 0
    for name in ("leaderboard.csv", "leaderboard.md", "profile.png", "curves.png", "report.html"):
        assert (out_dir / name).stat().st_size > 0, name

    recs = records(tmp_path)
    assert len(recs) == 8
    # By hand: study time = fastest trial at target; workload time = median over studies.
    per_sub = {}
    for sub in ("sgd", "momentum"):
        studies = []
        for study in (0, 1):
            steps = [
                r["steps_to_target"]
                for r in recs
                if r["submission"] == sub and r["study"] == study and r["status"] == "reached"
            ]
            studies.append(min(steps) if steps else math.inf)
        per_sub[sub] = (studies[0] + studies[1]) / 2  # the median of two (inf if one missed)
    best = min(per_sub.values())
    tau_max = 4.0
    expected = {}
    for sub, t in per_sub.items():
        ratio = t / best if math.isfinite(t) else math.inf
        expected[sub] = max(0.0, tau_max - ratio) / (tau_max - 1) if ratio <= tau_max else 0.0
    board = pd.read_csv(out_dir / "leaderboard.csv").set_index("submission")
    for sub, score in expected.items():
        assert board.loc[sub, "score"] == pytest.approx(score), (sub, per_sub)
        if math.isfinite(per_sub[sub]) and math.inf not in per_sub.values():
            assert board.loc[sub, "toy/steps_to_target"] == pytest.approx(per_sub[sub])


def test_sweep_runs_both_frameworks_on_a_real_workload(tmp_path, capsys):
    """`frameworks=[torch,jax]`: one trial per framework, each record naming its framework."""
    args = [
        "sweep",
        "workloads=[shakespeare]",
        "submissions=[adamw]",
        "frameworks=[torch,jax]",
        "ruleset=self",
        "num_studies=1",
        f"results_dir={tmp_path}",
        "sweep=t",
        "max_steps=3",
        "n_jobs=2",
    ]
    assert main(args) == 0
    recs = {r["framework"]: r for r in records(tmp_path)}
    assert sorted(recs) == ["jax", "torch"]
    for framework, record in recs.items():
        assert record["status"] == "budget_exhausted", record["error"]
        assert record["global_steps"] == 3 and record["workload"] == "shakespeare"
        assert f"{framework}.py" in record["submission_files"]
    assert recs["jax"]["compile_time_s"] > 0


def test_relaunches_after_dead_job_processes_are_bounded(tmp_path, monkeypatch, capsys):
    """A launcher that keeps breaking: a trial interrupted twice gets a failure record written
    by the main process, and launches that move nothing on end the sweep."""
    import concurrent.futures.process
    import socket

    from algoperf import sweep
    from algoperf.config import compose

    submission = fixture_submission("sgd")
    cfg = compose(["workload=toy", f"submission={submission}", "hardware=test", f"results_dir={tmp_path}"])
    directory = results.trial_dir(tmp_path, results.TrialKey("default", "sgd", "toy", "torch", 0, 0))
    planned = [
        sweep.PlannedTrial(
            submission="sgd", workload="toy", framework="torch", study=0, trial=0, directory=directory
        )
    ]
    launches = []

    def broken_launch(hydra_args):
        launches.append(hydra_args)
        if not results.is_complete(directory):  # the trial started, then its job process died
            gone = subprocess.Popen(["true"])
            gone.wait()
            directory.mkdir(parents=True, exist_ok=True)
            (directory / results.RUNNING_NAME).write_text(f"{socket.gethostname()} {gone.pid}")
        raise concurrent.futures.process.BrokenProcessPool("a worker died")

    monkeypatch.setattr(sweep, "_launch", broken_launch)
    sweep.launch_until_done([], planned, cfg)
    record = results.read_record(directory / "record.json")
    assert record["status"] == "failed" and "died 2 times" in record["error"]
    assert record["max_submission_time_s"] == 30 and record["eval_every_steps"] == 10
    assert len(launches) == 4  # 2 interrupted, then 2 that moved nothing on
    assert "stopping here" in capsys.readouterr().out
