"""Fault injection: each fault is a real trial in a real sweep; nothing is lost or duplicated."""

import json
import os
import shutil
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
from algoperf.sandbox import descendants_of


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
    # A crash in one submission's trial does not stop another's, in one sweep side by side.
    # (`raises` crashes without an hparams override: overrides apply to every trial of a sweep.)
    args = sweep_cmd(tmp_path, "mixed", trials=2, n_jobs=2)
    args[2] = f"submissions=[{fixture_submission('raises')},{fixture_submission('sgd')}]"
    main(args)
    recs = tally(tmp_path, "crash next to healthy trials", 4, run_log, "")
    statuses = Counter((r["submission"], r["status"]) for r in recs)
    FAULT_ROWS[-1]["outcome"] = ", ".join(f"{s}:{st}" for (s, st) in sorted(statuses))
    assert statuses[("raises", "failed")] == 2
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
    try:
        # Not a sleep: the kill comes once a trial is mid-way (its supervisor has started; its
        # worker still has to start, train and evaluate before the trial could end).
        wait_for(lambda: running_trial(tmp_path, mid_way=True), REACH_S, "a trial mid-way", proc)
    finally:
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

    from algoperf.runner import run_trial
    from algoperf.schema import RunConfig

    def broken_replace(src, dst):
        raise OSError("disk full (injected)")

    monkeypatch.setattr(results.os, "replace", broken_replace)
    cfg = RunConfig(
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


def test_damaged_old_and_copied_records_are_never_silently_scored(tmp_path, capsys):
    from algoperf.cli import main as cli
    from algoperf.signing import load_key, sign

    main(sweep_cmd(tmp_path, "damaged", submission="sgd", trials=3))
    paths = sorted(tmp_path.rglob("record.json"))
    paths[0].write_text("{ truncated")
    old = json.loads(paths[1].read_text())
    old.pop("signature")
    old["schema_version"] = 0  # as an older harness, with its own valid signature, wrote it
    paths[1].write_text(json.dumps(sign(old, load_key())))
    backup = tmp_path / "damaged" / "backup" / paths[2].parent.relative_to(tmp_path)
    shutil.copytree(paths[2].parent, backup)
    loaded = results.load(tmp_path / "damaged")
    assert len(loaded.trials) == 0 and len(loaded.invalid) == 4 and loaded.bad_signatures == []
    capsys.readouterr()
    assert cli(["score", str(tmp_path / "damaged")]) == 2
    err = capsys.readouterr().err
    for path in (*paths, backup / "record.json"):
        assert f"\n  {path}: " in err
    assert "is damaged" in err and "schema_version: input should be" in err and "also recorded at" in err
    tally(tmp_path / "damaged", "damaged, old-schema and copied records", 4, None, "refused, each named")
    FAULT_ROWS[-1]["lost"] = 0  # all four are kept on disk, reported, not scored


# ---- a sweep survives its own processes ---------------------------------------------------------


def start_sweep(args: list, output: Path) -> subprocess.Popen:
    """The sweep as a process of its own, leader of its own session."""
    return subprocess.Popen(
        [sys.executable, "-m", "algoperf.cli", *args],
        start_new_session=True,
        stdout=output.open("w"),
        stderr=subprocess.STDOUT,
    )


# How long to wait for a sweep to reach a state: only a guard against a hang (a sweep that
# ends first fails at once), so generous: on a loaded machine a trial's start-up alone can take
# tens of seconds.
REACH_S = 600


def wait_for(condition, timeout_s: float, what: str, process: subprocess.Popen | None = None):
    """The first true value of `condition()`, polled; fails when `process` ends first."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        found = condition()
        if found:
            return found
        if process is not None and process.poll() is not None:
            raise AssertionError(f"the process ended (exit {process.returncode}) before {what}")
        time.sleep(0.05)
    raise AssertionError(f"timed out after {timeout_s:.0f} s waiting for {what}")


def running_trial(root: Path, mid_way: bool = False) -> tuple[Path, int] | None:
    """A trial folder whose trial process runs now, and that process's pid. `mid_way`: only a
    trial whose supervisor has begun (evals.csv exists) and that has no record: it has its
    worker's start-up, some training and an evaluation still to go, seconds at least."""
    for marker in root.rglob(".running"):
        folder = marker.parent
        if mid_way and (not (folder / results.EVALS_NAME).exists() or results.is_complete(folder)):
            continue
        try:
            return folder, int(marker.read_text().split()[1])
        except (OSError, IndexError, ValueError):
            continue  # it just ended
    return None


def live_processes(mentioning: str, session: int) -> list[str]:
    """Processes (not zombies) whose command line mentions `mentioning` or whose session is
    `session`, from /proc."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit() or int(entry.name) == os.getpid():
            continue
        try:
            cmdline = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
            state, _, _, sid = (entry / "stat").read_text().rsplit(")", 1)[1].split()[:4]
        except (OSError, ValueError):
            continue
        if state not in ("Z", "X") and (mentioning in cmdline or int(sid) == session):
            found.append(f"{entry.name} {cmdline[:150]}")
    return found


def slow_sweep(root: Path, sweep: str) -> list:
    """3 trials, 2 at a time, each a few seconds long (slow evals, every 5 steps)."""
    args = sweep_cmd(root, sweep, trials=3, n_jobs=2, eval_every_steps=5, **{"hparams.fail_in": "none"})
    args[1] = "workloads=[toy_slow_eval]"
    return args


def test_dead_job_process_fails_only_its_trial(tmp_path, run_log):
    """SIGKILL of one joblib (loky) worker: its trial is recorded as failed, the trial loky
    kills beside it runs again, and the sweep finishes every trial."""
    results_root = tmp_path / "results"
    proc = start_sweep(slow_sweep(results_root, "worker_killed"), tmp_path / "sweep.out")
    # Not a sleep: a trial mid-way, whose job process is killed at once.
    killed_dir, trial_pid = wait_for(
        lambda: running_trial(results_root, mid_way=True), REACH_S, "a trial mid-way", proc
    )
    with open(f"/proc/{trial_pid}/stat") as f:
        job_pid = int(f.read().rsplit(")", 1)[1].split()[1])
    assert job_pid != proc.pid, "the trial should run under a launcher worker"
    os.kill(job_pid, signal.SIGKILL)
    code = proc.wait(timeout=300)
    output = (tmp_path / "sweep.out").read_text()
    recs = tally(results_root, "SIGKILL of a joblib worker mid-trial", 3, None, "")
    keys = Counter((r["study"], r["trial"]) for r in recs)
    FAULT_ROWS[-1]["duplicates"] = sum(n - 1 for n in keys.values())
    FAULT_ROWS[-1]["outcome"] = ", ".join(sorted(r["status"] for r in recs))
    assert "a job process of the sweep died" in output, output
    assert code == 0, output  # as for any sweep whose trials are all recorded, failed ones too
    assert len(keys) == 3 and max(keys.values()) == 1
    killed = results.read_record(killed_dir / "record.json")
    assert killed["status"] == "failed"
    assert killed["error"] == f"the sweep's job process (pid {job_pid}) died while this trial ran"
    assert killed["max_submission_time_s"] == 30 and killed["root_seed"] == 0
    others = [r for r in recs if r["trial"] != killed["trial"]]
    assert {r["status"] for r in others} <= {"reached", "budget_exhausted"}, others
    wait_for(lambda: not live_processes(str(results_root), proc.pid), 10, "the sweep's processes to end")


def test_sigkill_of_the_main_process_takes_the_whole_sweep(tmp_path, run_log):
    """SIGKILL of the sweep's main process alone: within seconds no process of the sweep is
    left (launcher workers, trials, their workers, resource trackers); a re-run resumes."""
    results_root = tmp_path / "results"
    args = slow_sweep(results_root, "main_killed")
    proc = start_sweep(args, tmp_path / "sweep.out")

    def mid_way_with_its_processes():
        # Launcher workers, trials, their workers (in sessions of their own): 4 at least.
        processes = sorted(descendants_of(proc.pid))
        return running_trial(results_root, mid_way=True) and len(processes) >= 4 and processes

    try:
        started = wait_for(mid_way_with_its_processes, REACH_S, "a trial mid-way and its processes", proc)
        interrupted = [m.parent for m in results_root.rglob(".running") if not results.is_complete(m.parent)]
    finally:
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait()

    def everything_gone():
        left = live_processes(str(results_root), proc.pid)
        left += [p for p in live_processes("algoperf.worker", -1) if int(p.split()[0]) in started]
        return not left

    start = time.monotonic()
    wait_for(everything_gone, 10, "the sweep's processes to end")
    gone_after_s = time.monotonic() - start
    assert interrupted
    assert not [d for d in interrupted if results.is_complete(d)], "an interrupted trial is not recorded"
    assert main(args) == 0  # resumes
    recs = tally(results_root, "SIGKILL of the sweep's main process alone", 3, None, "")
    keys = Counter((r["study"], r["trial"]) for r in recs)
    FAULT_ROWS[-1]["duplicates"] = sum(n - 1 for n in keys.values())
    FAULT_ROWS[-1]["outcome"] = f"all its processes gone in {gone_after_s:.1f} s; resumed: " + ", ".join(
        sorted({r["status"] for r in recs})
    )
    assert len(keys) == 3 and max(keys.values()) == 1
    assert {r["status"] for r in recs} <= {"reached", "budget_exhausted"}


CHANGED_SETTINGS = [
    ("seed=1", "seed: recorded 0, requested 1"),
    ("hparams.learning_rate=0.05", "hparams.learning_rate: recorded (not set), requested 0.05"),
    ("max_steps=5", "max_steps: recorded None, requested 5"),
    ("max_submission_time_s=10", "max_submission_time_s: recorded None, requested 10"),
    ("eval_every_steps=3", "eval_every_steps: recorded None, requested 3"),
]


def test_changed_settings_on_resume_are_refused(tmp_path, capsys):
    """A re-run of a sweep with other settings refuses before running anything; new_sweep=true
    picks a fresh name; more trials (num_trials) extend the sweep."""
    args = sweep_cmd(tmp_path, "settled", submission="sgd", trials=1)
    assert main(args) == 0
    stored = {path: path.read_bytes() for path in tmp_path.rglob("*") if path.is_file()}
    settings = json.loads((tmp_path / "settled" / "sweep.json").read_text())["settings"]
    assert settings["seed"] == 0 and "workloads" not in settings and "n_jobs" not in settings
    capsys.readouterr()
    for change, message in CHANGED_SETTINGS:
        assert main([*args, change]) == 2, change
        err = capsys.readouterr().err
        assert message in err and "sweep=NAME" in err and "new_sweep=true" in err, err
        assert err.count("\n") == 1, err  # one line
    assert {path: path.read_bytes() for path in tmp_path.rglob("*") if path.is_file()} == stored

    assert main([*args, "num_trials=2", "n_jobs=1"]) == 0  # a sweep may grow
    assert "1 already complete" in capsys.readouterr().out
    assert main([*args, "seed=1", "new_sweep=true"]) == 0
    assert "named 'settled-2'" in capsys.readouterr().out
    fresh = [results.read_record(p) for p in (tmp_path / "settled-2").rglob("record.json")]
    assert [(r["sweep"], r["root_seed"]) for r in fresh] == [("settled-2", 1)]
    recs = tally(tmp_path, "resume with changed settings (5 changes)", 3, None, "")
    FAULT_ROWS[-1]["outcome"] = "refused, named each; new_sweep=true -> settled-2"
    assert len(recs) == 3


def test_run_refuses_a_complete_trial_of_other_settings(tmp_path, capsys):
    """`algoperf run` on a complete trial returns its record only for the same settings."""
    run = [
        "run",
        "workload=toy",
        f"submission={fixture_submission('sgd')}",
        "hardware=test",
        f"results_dir={tmp_path}",
        "trial=0",
        "max_steps=20",
        "progress=false",
    ]
    assert main(run) == 0
    (record_path,) = tmp_path.rglob("record.json")
    stored = record_path.read_bytes()
    changes = [
        ("seed=1", "seed: recorded 0, requested 1"),
        ("hparams.learning_rate=0.05", "hparams.learning_rate: recorded "),
        ("max_steps=30", "max_steps: recorded 20, requested 30"),
        ("max_submission_time_s=10", "max_submission_time_s: recorded 30.0, requested 10.0"),
        ("eval_every_steps=3", "eval_every_steps: recorded 10, requested 3"),
    ]
    capsys.readouterr()
    for change, message in changes:
        assert main([*run, change]) == 2, change
        err = capsys.readouterr().err
        assert message in err and "overwrite=true" in err, err
    assert main([*run, "max_submission_time_s=30"]) == 0  # the same settings, said otherwise
    assert record_path.read_bytes() == stored
    tally(tmp_path, "run on a complete trial, other settings", 1, None, "refused, record kept")


def test_interrupted_overwrite_keeps_the_old_record(tmp_path):
    """overwrite=true runs beside the trial folder: killed mid-trial, the old record.json and
    evals.csv stay as they were; a complete overwrite replaces both."""
    run = [
        sys.executable,
        "-m",
        "algoperf.cli",
        "run",
        "workload=toy_slow_eval",
        f"submission={fixture_submission('sgd')}",
        "hardware=test",
        f"results_dir={tmp_path}",
        "trial=0",
        "eval_every_steps=5",
        "progress=false",
    ]
    subprocess.run([*run, "max_steps=5"], check=True, capture_output=True)
    (trial,) = [p.parent for p in tmp_path.rglob("record.json")]
    old = {name: (trial / name).read_bytes() for name in ("record.json", "evals.csv")}
    staging = trial.parent / f".{trial.name}.overwrite"

    # stop_at_target=false: it trains on, so it is surely killed mid-trial.
    proc = subprocess.Popen(
        [*run, "overwrite=true", "stop_at_target=false"], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )
    try:
        wait_for(lambda: len(_lines(staging / "evals.csv")) >= 3, REACH_S, "the overwrite's evals", proc)
        with pytest.raises(results.TrialClaimed):  # the trial is still claimed while it runs
            with results.claim(trial):
                pass
        assert {name: (trial / name).read_bytes() for name in old} == old
    finally:
        proc.kill()
        proc.wait()
    assert {name: (trial / name).read_bytes() for name in old} == old
    # Its leftovers are never loaded, even holding a record.
    shutil.copy(trial / "record.json", staging / "record.json")
    loaded = results.load(tmp_path)
    assert len(loaded.trials) == 1 and loaded.bad_signatures == []
    assert loaded.trials.iloc[0]["max_steps"] == 5

    subprocess.run([*run, "overwrite=true", "max_steps=10"], check=True, capture_output=True)
    new = {name: (trial / name).read_bytes() for name in old}
    assert all(new[name] != old[name] for name in old)
    loaded = results.load(tmp_path)
    assert len(loaded.trials) == 1 and loaded.bad_signatures == []
    assert loaded.trials.iloc[0]["max_steps"] == 10
    assert sorted(p.name for p in trial.parent.iterdir()) == [trial.name]  # no leftovers
    tally(tmp_path, "SIGKILL of an overwrite mid-trial", 1, None, "old pair kept; then replaced")


def _lines(path: Path) -> list[str]:
    try:
        return path.read_text().splitlines()
    except OSError:
        return []


def test_overwrite_swap_without_renameat2(tmp_path, monkeypatch):
    """Where RENAME_EXCHANGE is missing the swap takes two renames: a crash between them is
    undone by the next run of the trial (the old folder is put back), and the folders are
    swapped all the same."""
    monkeypatch.setattr(results, "_libc", object())  # no renameat2
    new, trial, aside = tmp_path / ".trial_0.overwrite", tmp_path / "trial_0", tmp_path / ".trial_0.old"
    for folder, text in ((new, "new"), (trial, "old")):
        folder.mkdir()
        (folder / "record.json").write_text(text)

    trial.rename(aside)  # the first rename, then a crash
    results.undo_interrupted_swap(trial)
    assert (trial / "record.json").read_text() == "old" and not aside.exists()

    results.exchange_folders(new, trial)
    assert (trial / "record.json").read_text() == "new" and (new / "record.json").read_text() == "old"
    assert not aside.exists()
    shutil.rmtree(new)  # the old folder, which the overwrite removes next
    tally(tmp_path, "crash between an overwrite's two renames", 1, None, "undone on the next run")
