"""`algoperf sweep`: a Hydra multirun over (submission, workload, framework, study, trial).

Each Hydra job runs its trial in a fresh child process (`algoperf run ...`): launchers such as
joblib reuse worker processes, and a trial must not inherit another's memory, threads or
compiled state, nor take the sweep down when it crashes. Complete trials are skipped, so a
re-run resumes an interrupted sweep.
"""

from __future__ import annotations

import os
import signal
import sys
import threading
import time
from pathlib import Path
from typing import Any

from algoperf import results as store
from algoperf.config import CONF_DIR, check_keys, compose, normalise_overrides, searchpath_override, to_dict
from algoperf.errors import AlgoperfError
from algoperf.plugins import find_submission, list_workloads, workload_class
from algoperf.rulesets import Ruleset
from algoperf.watchdog import Limits, run_watched

SWEEP_KEYS = ("workloads", "submissions", "frameworks", "num_studies", "num_trials", "n_jobs")
EXIT_CLAIMED = 3  # the child found the trial held by another live sweep


def _parse_list(value: str) -> list[str]:
    value = value.strip()
    if value.startswith("[") and value.endswith("]"):
        value = value[1:-1]
    return [item.strip() for item in value.split(",") if item.strip()]


def plan(args: list[str]) -> tuple[dict[str, Any], list[str]]:
    """Split sweep arguments into the sweep's own keys and overrides passed to every trial."""
    sweep: dict[str, Any] = {}
    passthrough: list[str] = []
    for item in args:
        key, _, value = item.partition("=")
        if key in SWEEP_KEYS:
            sweep[key] = (
                _parse_list(value) if key in ("workloads", "submissions", "frameworks") else int(value)
            )
        elif key in ("workload", "submission", "framework", "study", "trial"):
            raise AlgoperfError(
                f"`{key}=` is chosen per trial by the sweep; use `{key}s=[...]`"
                + (" or num_studies/num_trials" if key in ("study", "trial") else "")
                + " instead."
            )
        else:
            passthrough.append(item)
    for key in ("workloads", "submissions"):
        if not sweep.get(key):
            raise AlgoperfError(
                f"a sweep needs {key}=[...], e.g. "
                "`algoperf sweep workloads=[fashion_mnist] submissions=[adamw,nadamw]`."
            )
    sweep.setdefault("frameworks", ["torch"])
    return sweep, passthrough


def run_sweep_cli(args: list[str]) -> int:
    sweep, passthrough = plan(args)
    launcher_overrides = [a for a in passthrough if a.startswith(("hydra/", "hydra.", "+hydra"))]
    trial_overrides = [a for a in passthrough if a not in launcher_overrides]
    trial_overrides = normalise_overrides(trial_overrides)
    check_keys(trial_overrides, _config_keys())
    first = [f"workload={sweep['workloads'][0]}", f"submission={sweep['submissions'][0]}"]
    cfg = compose(first + trial_overrides)  # validates every override before any work
    rules = Ruleset.from_config(to_dict(cfg.ruleset))
    num_studies = sweep.get("num_studies", rules.num_studies)
    num_trials = 1 if rules.self_tuning else sweep.get("num_trials", rules.num_trials)

    # Validate every name before launching anything, so a typo costs nothing.
    registry = list_workloads()
    for workload in sweep["workloads"]:
        for framework in sweep["frameworks"]:
            workload_class(workload, framework)
            if workload not in (cfg.hardware.workloads or {}):
                raise AlgoperfError(
                    f"hardware profile {cfg.hardware.name!r} has no settings for {workload!r}; "
                    f"add it to conf/hardware/{cfg.hardware.name}.yaml."
                )
    del registry
    sources = {name: find_submission(name) for name in sweep["submissions"]}
    for name, source in sources.items():
        missing = [fw for fw in sweep["frameworks"] if fw not in source.frameworks]
        if missing:
            raise AlgoperfError(
                f"submission {name!r} has no {', '.join(missing)} implementation; "
                f"it has {', '.join(source.frameworks)}. Drop it from frameworks=[...] or add the file."
            )

    # The hardware profile fixes each trial's threads (budgets were measured with them); by
    # default the sweep runs as many trials side by side as the cores allow.
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1
    threads = cfg.threads or cfg.hardware.get("threads_per_trial")
    n_jobs = (
        sweep.get("n_jobs")
        or _launcher_jobs(launcher_overrides)
        or (max(1, cores // int(threads)) if threads else 1)
    )
    threads = int(threads or max(1, cores // n_jobs))
    if not any(a.startswith("threads=") for a in trial_overrides):
        trial_overrides.append(f"threads={threads}")
    if n_jobs > 1 and not any(a.startswith("hydra/launcher=") for a in launcher_overrides):
        launcher_overrides.append("hydra/launcher=joblib")
    if any(a == "hydra/launcher=joblib" for a in launcher_overrides) and not any(
        a.startswith("hydra.launcher.n_jobs=") for a in launcher_overrides
    ):
        launcher_overrides.append(f"hydra.launcher.n_jobs={n_jobs}")

    results_dir = Path(str(cfg.results_dir))
    sweep_name = str(cfg.sweep)
    expected = [
        store.trial_dir(results_dir, sweep_name, sources[s].name, w, fw, study, trial)
        for s in sweep["submissions"]
        for w in sweep["workloads"]
        for fw in sweep["frameworks"]
        for study in range(num_studies)
        for trial in range(num_trials)
    ]
    print(
        f"sweep {sweep_name!r}: {len(sweep['submissions'])} submission(s) x {len(sweep['workloads'])} "
        f"workload(s) x {len(sweep['frameworks'])} framework(s) x {num_studies} studies x "
        f"{num_trials} trials = {len(expected)} trials "
        f"({sum(store.is_complete(d) for d in expected)} already complete); "
        f"{n_jobs} in parallel, {threads} thread(s) each; results in {results_dir / sweep_name}",
        flush=True,
    )
    hydra_args = [
        "--multirun",
        f"submission={','.join(sweep['submissions'])}",
        f"workload={','.join(sweep['workloads'])}",
        f"framework={','.join(sweep['frameworks'])}",
        f"study={','.join(str(i) for i in range(num_studies))}",
        f"trial={','.join(str(i) for i in range(num_trials))}",
        *trial_overrides,
        *launcher_overrides,
        f"hydra.sweep.dir={results_dir / sweep_name / '.hydra'}",
        "hydra.sweep.subdir=${hydra.job.num}",
        "hydra/job_logging=disabled",
        "hydra/hydra_logging=disabled",
        *searchpath_override(),
    ]
    monitor = ProgressMonitor(expected, n_jobs)
    monitor.start()
    try:
        _launch(hydra_args)
    finally:
        monitor.stop()
    return summarise(expected)


def _config_keys() -> list[str]:
    from omegaconf import OmegaConf

    base = OmegaConf.load(CONF_DIR / "config.yaml")
    return [k for k in base if k != "defaults"] + ["hardware", "ruleset", "logger", "hydra"]


def _launcher_jobs(launcher_overrides: list[str]) -> int:
    for item in launcher_overrides:
        if item.startswith("hydra.launcher.n_jobs="):
            return max(1, int(item.split("=", 1)[1]))
    if "hydra/launcher=joblib" in launcher_overrides:
        return os.cpu_count() or 1
    return 0


def _launch(hydra_args: list[str]) -> None:
    """Run the Hydra multirun in this process (Hydra reads sys.argv)."""
    import hydra

    @hydra.main(config_path=str(CONF_DIR), config_name="config", version_base="1.3")
    def job(cfg: Any) -> int:
        return run_job(cfg)

    argv = sys.argv
    sys.argv = ["algoperf-sweep", *hydra_args]
    try:
        job()
    finally:
        sys.argv = argv


def run_job(cfg: Any) -> int:
    """One Hydra job: run the trial in a fresh process unless it is already complete."""
    from hydra.core.hydra_config import HydraConfig

    source = find_submission(str(cfg.submission))
    directory = store.trial_dir_for(cfg, source.name)
    if store.is_complete(directory):
        return 0
    overrides = [o for o in HydraConfig.get().overrides.task if not o.startswith("hydra")]
    command = [sys.executable, "-m", "algoperf.cli", "run", *overrides, "progress=false"]
    directory.mkdir(parents=True, exist_ok=True)
    outcome = run_watched(
        command,
        directory / "trial.log",
        trial_limits(cfg),
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
        preexec_fn=_die_with_parent,
    )
    if outcome.returncode == EXIT_CLAIMED or store.is_complete(directory):
        return outcome.returncode
    # The child died without writing its record: killed by the watchdog, out of memory,
    # crashed interpreter. Record why, with the end of its output.
    tail = (directory / "trial.log").read_text()[-4000:]
    if outcome.killed_for == "timeout":
        status, reason = "timeout", outcome.detail
    elif outcome.killed_for == "memory":
        status, reason = "failed", outcome.detail
    elif outcome.returncode < 0:
        status = "failed"
        reason = f"trial process killed by signal {signal.Signals(-outcome.returncode).name}"
    else:
        status, reason = "failed", f"trial process exited with code {outcome.returncode}"
    store.write_failure_record(
        directory, cfg, source.name, f"{reason}; no record written.\n{tail}", status=status
    )
    return outcome.returncode


def trial_limits(cfg: Any) -> Limits:
    """Watchdog limits from the hardware profile: wall time = factor x budget + grace."""
    from algoperf.hardware import workload_settings

    watchdog = dict(cfg.hardware.get("watchdog") or {})
    settings = workload_settings(to_dict(cfg.hardware), str(cfg.workload), str(cfg.framework))
    budget = Ruleset.from_config(to_dict(cfg.ruleset)).budget_s(
        settings.max_submission_time_s, cfg.max_submission_time_s
    )
    wall = float(watchdog.get("wall_time_factor", 3.0)) * budget + float(watchdog.get("grace_s", 300))
    memory = watchdog.get("memory_limit_gib")
    return Limits(wall_time_s=wall, memory_gib=float(memory) if memory else None)


def _die_with_parent() -> None:
    """Linux: the trial process gets SIGKILL when its job process dies (no orphans on a kill)."""
    try:
        import ctypes

        ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG
    except OSError:
        pass


class ProgressMonitor:
    """Prints trials done / running / left and an ETA, from the results folder alone."""

    def __init__(self, expected: list[Path], n_jobs: int, period_s: float = 15.0):
        self.expected, self.n_jobs, self.period_s = expected, max(1, n_jobs), period_s
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, daemon=True)
        self._start = time.monotonic()
        self._done_at_start = sum(store.is_complete(d) for d in expected)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(timeout=2)
        self.report()

    def _loop(self) -> None:
        while not self._stop.wait(self.period_s):
            self.report()

    def report(self) -> None:
        done = sum(store.is_complete(d) for d in self.expected)
        running = sum(store.is_running(d) and not store.is_complete(d) for d in self.expected)
        left = len(self.expected) - done - running
        elapsed = time.monotonic() - self._start
        new = done - self._done_at_start
        eta = ""
        if new > 0 and done < len(self.expected):
            remaining_s = elapsed / new * (len(self.expected) - done)
            eta = f", ETA {int(remaining_s // 60)}m{int(remaining_s % 60):02d}s"
        print(
            f"[sweep] {done}/{len(self.expected)} done, {running} running, {left} left, "
            f"elapsed {int(elapsed // 60)}m{int(elapsed % 60):02d}s{eta}",
            flush=True,
        )


def summarise(expected: list[Path]) -> int:
    counts: dict[str, int] = {}
    incomplete = 0
    for directory in expected:
        if store.is_complete(directory):
            status = store.read_record(directory / store.RECORD_NAME)["status"]
            counts[status] = counts.get(status, 0) + 1
        else:
            incomplete += 1
    summary = ", ".join(f"{n} {status}" for status, n in sorted(counts.items()))
    print(
        f"[sweep] finished: {summary or 'no trials'}"
        + (f"; {incomplete} not recorded (re-run the same command to resume)" if incomplete else "")
    )
    return 0 if incomplete == 0 else 1
