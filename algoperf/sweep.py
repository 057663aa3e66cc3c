"""`algoperf sweep`: a Hydra multirun over (submission, workload, framework, study, trial).

Each Hydra job runs its trial in a fresh child process (`algoperf run ...`): launchers such as
joblib reuse worker processes, and a trial must not inherit another's memory, threads or
compiled state, nor take the sweep down when it crashes. Complete trials are skipped, so a
re-run resumes an interrupted sweep.

A sweep survives its own processes: a launcher worker that dies takes only its trial (recorded
as failed) and the multirun is launched again for the trials it interrupted; a killed main
process takes every process of the sweep with it (and a re-run resumes). A re-run must ask for
the settings the sweep was started with (`sweep.json`), so one sweep never mixes settings.
"""

from __future__ import annotations

import concurrent.futures
import dataclasses
import datetime as dt
import functools
import itertools
import json
import os
import signal
import sys
import threading
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from algoperf import results as store
from algoperf.config import (
    CONF_DIR,
    UnknownSetting,
    compose,
    compose_sweep,
    normalise_overrides,
    searchpath_override,
    typed,
)
from algoperf.errors import AlgoperfError
from algoperf.hardware import workload_settings
from algoperf.plugins import find_submission, list_workloads, workload_class
from algoperf.schema import Ruleset, RunConfig, SweepConfig
from algoperf.tuning import check_sweep_overrides, load_search_space
from algoperf.watchdog import (
    SWEEP_JOB_ENV,
    SWEEP_PID_ENV,
    Limits,
    die_with_parent,
    exit_with_sweep,
    run_watched,
    sweep_job_process,
)

if TYPE_CHECKING:
    from omegaconf import DictConfig

SWEEP_KEYS = tuple(f.name for f in dataclasses.fields(SweepConfig))  # the sweep's own settings
LIST_KEYS = ("workloads", "submissions", "frameworks")
EXIT_CLAIMED = 3  # the child found the trial held by another live sweep
SETTINGS_NAME = "sweep.json"
# A trial interrupted this often by dying launcher workers gets a failure record instead of
# another try, so a sweep whose workers keep dying still ends.
MAX_INTERRUPTIONS = 2
# How long the main process waits for the trials of a broken launch to end (the one whose job
# process died writes its record) before launching again.
STRAGGLER_WAIT_S = 30.0


def plan(args: list[str]) -> tuple[SweepConfig, list[str]]:
    """Split sweep arguments into the sweep's own settings (a SweepConfig, checked by its schema)
    and the overrides passed to every trial (checked when they are composed, before anything is
    launched)."""
    own: list[str] = []
    passthrough: list[str] = []
    for item in args:
        key, _, value = item.partition("=")
        if key in SWEEP_KEYS:
            # `workloads=toy` and `workloads=a,b` mean the lists Hydra writes with brackets.
            listed = key in LIST_KEYS and not value.strip().startswith("[")
            own.append(f"{key}=[{value}]" if listed else item)
        elif key in ("workload", "submission", "framework", "study", "trial"):
            raise AlgoperfError(
                f"`{key}=` is chosen per trial by the sweep; use `{key}s=[...]`"
                + (" or num_studies/num_trials" if key in ("study", "trial") else "")
                + " instead."
            )
        else:
            if key.lstrip("+") == "hydra.launcher.n_jobs":
                _positive_int(key.lstrip("+"), value)
            passthrough.append(item)
    return compose_sweep(own), passthrough


def _positive_int(key: str, value: str) -> int:
    """The launcher's n_jobs as given on the command line (a key of Hydra's launcher config)."""
    try:
        number = int(value.strip())
    except ValueError:
        number = 0
    if number < 1 or not value.strip().lstrip("+").isdigit():
        raise AlgoperfError(f"{key}={value!r}: is not a positive integer; give one, e.g. {key}=2.")
    return number


def run_sweep_cli(args: list[str]) -> int:
    sweep, passthrough = plan(args)
    launcher_overrides = [a for a in passthrough if a.startswith(("hydra/", "hydra.", "+hydra"))]
    trial_overrides = [a for a in passthrough if a not in launcher_overrides]
    trial_overrides = normalise_overrides(trial_overrides)
    first = [f"workload={sweep.workloads[0]}", f"submission={sweep.submissions[0]}"]
    try:
        cfg = compose(first + trial_overrides)  # validates every override before any work
    except UnknownSetting as e:  # a sweep takes the sweep's own keys too
        if "." in e.key or e.where:
            raise
        raise UnknownSetting(e.key, e.owner, also=SWEEP_KEYS) from None
    num_studies = sweep.num_studies or cfg.ruleset.num_studies
    num_trials = 1 if cfg.ruleset.self_tuning else sweep.num_trials or cfg.ruleset.num_trials

    # Validate every name before launching anything, so a typo costs nothing.
    registry = list_workloads()
    for workload in sweep.workloads:
        for framework in sweep.frameworks:
            workload_class(workload, framework)
            if workload not in cfg.hardware.workloads:
                raise AlgoperfError(
                    f"hardware profile {cfg.hardware.name!r} has no settings for {workload!r}; "
                    f"add it to conf/hardware/{cfg.hardware.name}.yaml."
                )
    del registry
    sources = {name: find_submission(name) for name in sweep.submissions}
    check_sweep_overrides(sources, cfg.hparams, cfg.search_space)  # every submission's search space
    for name, source in sources.items():
        missing = [fw for fw in sweep.frameworks if fw not in source.frameworks]
        if missing and source.is_algoperf:
            raise AlgoperfError(
                f"submission {name!r} is an AlgoPerf submission written for "
                f"{', '.join(source.frameworks)} (from its imports); sweep it with "
                f"frameworks=[{','.join(source.frameworks)}], in a sweep of its own if the others "
                f"run in {', '.join(missing)}."
            )
        if missing:
            raise AlgoperfError(
                f"submission {name!r} has no {', '.join(missing)} implementation; "
                f"it has {', '.join(source.frameworks)}. Drop it from frameworks=[...] or add the file."
            )

    # The hardware profile fixes each trial's threads (budgets were measured with them); by
    # default the sweep runs as many trials side by side as the cores allow.
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1
    threads = cfg.threads or cfg.hardware.threads_per_trial
    n_jobs = (
        sweep.n_jobs
        or _launcher_jobs(launcher_overrides)
        or (max(1, cores // int(threads)) if threads else 1)
    )
    threads = int(threads or max(1, cores // n_jobs))
    if not any(a.startswith("threads=") for a in trial_overrides):
        trial_overrides.append(f"threads={threads}")
        cfg.threads = threads  # as the trials get it (the sweep's settings record it)
    if n_jobs > 1 and not any(a.startswith("hydra/launcher=") for a in launcher_overrides):
        launcher_overrides.append("hydra/launcher=joblib")
    if any(a == "hydra/launcher=joblib" for a in launcher_overrides) and not any(
        a.startswith("hydra.launcher.n_jobs=") for a in launcher_overrides
    ):
        launcher_overrides.append(f"hydra.launcher.n_jobs={n_jobs}")

    results_dir = Path(cfg.results_dir)
    sweep_name = cfg.sweep
    if sweep.new_sweep:
        sweep_name = _fresh_sweep_name(results_dir, sweep_name)
        cfg.sweep = sweep_name
        trial_overrides = [a for a in trial_overrides if not a.startswith("sweep=")] + [f"sweep={sweep_name}"]
        print(f"new_sweep=true: this sweep is named {sweep_name!r}", flush=True)
    # Before anything runs: a re-run must ask for the settings the sweep was started with.
    check_sweep_settings(results_dir / sweep_name, cfg, sweep.workloads, sweep.frameworks)
    counts = trials_per_submission(sources, cfg, num_trials)
    planned = plan_trials(sweep_name, results_dir, sweep, sources, num_studies, counts)
    expected = [trial.directory for trial in planned]
    per_study = sorted(set(counts.values()))
    trials_text = (
        f"{per_study[0]} trials"
        if len(per_study) == 1
        else f"{per_study[0]}-{per_study[-1]} trials (per submission)"
    )
    print(
        f"sweep {sweep_name!r}: {len(sweep.submissions)} submission(s) x {len(sweep.workloads)} "
        f"workload(s) x {len(sweep.frameworks)} framework(s) x {num_studies} studies x "
        f"{trials_text} = {len(expected)} trials "
        f"({sum(store.is_complete(d) for d in expected)} already complete); "
        f"{n_jobs} in parallel, {threads} thread(s) each; results in {results_dir / sweep_name}",
        flush=True,
    )
    # A multirun is a product of its lists: submissions with fewer trials per study (a list of
    # fixed points) are launched in a multirun of their own, one after the other.
    groups: dict[int, list[str]] = {}
    for submission in sweep.submissions:
        groups.setdefault(counts[submission], []).append(submission)
    monitor = ProgressMonitor(expected, n_jobs)
    monitor.start()
    # Job processes (launcher workers) find the sweep's main process by this, to die with it.
    previous_pid = os.environ.get(SWEEP_PID_ENV)
    os.environ[SWEEP_PID_ENV] = str(os.getpid())
    try:
        for count, submissions in groups.items():
            names = {sources[s].name for s in submissions}
            # Hydra launches the product in this order (the first list varies slowest): the
            # longest trials first, so the short ones fill both cores at the end of the sweep.
            hydra_args = [
                "--multirun",
                f"workload={','.join(longest_first(sweep.workloads, sweep.frameworks, cfg))}",
                f"framework={','.join(sweep.frameworks)}",
                f"submission={','.join(submissions)}",
                f"study={','.join(str(i) for i in range(num_studies))}",
                f"trial={','.join(str(i) for i in range(count))}",
                *trial_overrides,
                *launcher_overrides,
                f"hydra.sweep.dir={results_dir / sweep_name / '.hydra'}",
                "hydra.sweep.subdir=${hydra.job.num}",
                "hydra/job_logging=disabled",
                "hydra/hydra_logging=disabled",
                *searchpath_override(),
            ]
            launch_until_done(hydra_args, [t for t in planned if t.submission in names], cfg)
    finally:
        monitor.stop()
        if previous_pid is None:
            os.environ.pop(SWEEP_PID_ENV, None)
        else:
            os.environ[SWEEP_PID_ENV] = previous_pid
    return summarise(expected)


def longest_first(workloads: list[str], frameworks: list[str], cfg: RunConfig) -> list[str]:
    """The workloads by their longest time budget in the profile, longest first (budgets are a
    fixed multiple of the time to target, so they order the trials' lengths)."""

    def budget(workload: str) -> float:
        return max(
            workload_settings(cfg.hardware, workload, framework).max_submission_time_s
            for framework in frameworks
        )

    return sorted(workloads, key=budget, reverse=True)


@dataclass
class PlannedTrial:
    submission: str  # its name (the folder name for a submission given by path)
    workload: str
    framework: str
    study: int
    trial: int
    directory: Path


def trials_per_submission(sources: dict[str, Any], cfg: RunConfig, num_trials: int) -> dict[str, int]:
    """Trials per study of each submission (`sources`: name as given -> SubmissionSource):
    num_trials, except under ruleset external for a search space that lists fewer fixed points
    than that, which runs one trial per point (AlgoPerf truncates its list the same way)."""
    counts = {}
    for given, source in sources.items():
        count = num_trials
        if not cfg.ruleset.self_tuning:
            points = load_search_space(source.folder, cfg.search_space).max_trials
            if points is not None and points < num_trials:
                print(
                    f"submission {source.name} lists {points} points; num_trials={num_trials} "
                    f"runs {points} trials per study",
                    flush=True,
                )
                count = points
        counts[given] = count
    return counts


def plan_trials(
    sweep_name: str,
    results_dir: Path,
    sweep: SweepConfig,
    sources: dict[str, Any],
    num_studies: int,
    counts: dict[str, int],
) -> list[PlannedTrial]:
    """Every trial of the sweep with its folder: each submission's `counts[submission]` trials in
    each of num_studies studies, on every workload and framework."""
    planned = []
    for submission in sweep.submissions:
        name = sources[submission].name
        for workload, framework, study, trial in itertools.product(
            sweep.workloads, sweep.frameworks, range(num_studies), range(counts[submission])
        ):
            key = store.TrialKey(sweep_name, name, workload, framework, study, trial)
            planned.append(
                PlannedTrial(
                    submission=name,
                    workload=workload,
                    framework=framework,
                    study=study,
                    trial=trial,
                    directory=store.trial_dir(results_dir, key),
                )
            )
    return planned


# ---- relaunching after a launcher worker died ----------------------------------------------------


def launch_until_done(hydra_args: list[str], planned: list[PlannedTrial], cfg: RunConfig) -> None:
    """Run the multirun; when a launcher worker dies, launch it again for the unfinished trials.

    A dying joblib (loky) worker breaks the whole pool: loky SIGKILLs the other workers and
    their trials, and the multirun raises. The trial whose worker died records that itself
    (watchdog.fail_trial_when_job_dies); the trials killed beside it left no record and run
    again in the next launch (complete trials are skipped). A trial interrupted
    MAX_INTERRUPTIONS times is recorded as failed here instead, and launches that break
    without moving any trial on are not repeated, so this always ends.
    """
    interruptions: Counter[Path] = Counter()
    fruitless = 0
    while True:
        markers = {t.directory: _running_marker(t.directory) for t in planned}
        done_before = sum(store.is_complete(t.directory) for t in planned)
        try:
            _launch(hydra_args)
            return
        except concurrent.futures.BrokenExecutor as e:  # loky's TerminatedWorkerError and kin
            print(
                f"[sweep] a job process of the sweep died ({type(e).__name__}); its trial is "
                "recorded as failed and the trials beside it run again",
                flush=True,
            )
        started = [t for t in planned if _running_marker(t.directory) != markers[t.directory]]
        _wait_for_trials([t.directory for t in started])
        progressed = sum(store.is_complete(t.directory) for t in planned) > done_before
        for trial in started:
            if store.is_complete(trial.directory) or store.is_running(trial.directory):
                continue
            interruptions[trial.directory] += 1
            progressed = True
            if interruptions[trial.directory] >= MAX_INTERRUPTIONS:
                _record_interrupted(trial, cfg, interruptions[trial.directory])
        fruitless = 0 if progressed else fruitless + 1
        if fruitless >= MAX_INTERRUPTIONS:
            print(
                "[sweep] the launcher broke again without any trial moving on; stopping here "
                "(re-run the same command to resume)",
                flush=True,
            )
            return


def _running_marker(directory: Path) -> str | None:
    """Who holds the trial (host and pid), as its `.running` marker says; None without one."""
    try:
        return (directory / store.RUNNING_NAME).read_text()
    except OSError:
        return None


def _wait_for_trials(directories: list[Path]) -> None:
    """Until none of these trials runs (the one whose job process died is writing its record),
    or STRAGGLER_WAIT_S: one still running then may be another sweep's, and is left to it."""
    deadline = time.monotonic() + STRAGGLER_WAIT_S
    while any(store.is_running(d) for d in directories) and time.monotonic() < deadline:
        time.sleep(0.2)


def _record_interrupted(trial: PlannedTrial, cfg: RunConfig, times: int) -> None:
    """Record a trial that dying job processes interrupted `times` times as failed."""
    trial_cfg = dataclasses.replace(
        cfg, workload=trial.workload, framework=trial.framework, study=trial.study, trial=trial.trial
    )
    try:
        with store.claim(trial.directory):
            if store.is_complete(trial.directory):
                return
            store.write_failure_record(
                trial.directory,
                trial_cfg,
                trial.submission,
                f"the sweep's job processes died {times} times while this trial ran or beside it "
                "(killed from outside, or out of memory); not tried again. Delete its trial folder "
                "and re-run the sweep to try once more.",
            )
    except store.TrialClaimed:
        pass  # another live sweep runs it now


# ---- the sweep's settings ------------------------------------------------------------------------

# Keys of the trial configuration that change no result: what the sweep chooses per trial, where
# results go, what is shown. Every other key is a setting all trials of one sweep share.
NOT_SETTINGS = (
    "workload",
    "submission",
    "framework",
    "study",
    "trial",
    "sweep",
    "results_dir",
    "data_dir",
    "progress",
    "logger",
    "overwrite",
    "hydra",
)
# Ruleset keys that only set the sweep's default size (num_studies/num_trials may grow).
RULESET_SIZE_KEYS = ("num_studies", "num_trials")


def _ruleset_skipped(ruleset: Ruleset) -> tuple[str, ...]:
    """Ruleset keys that are no setting of this sweep: its size, and the self-tuning budget
    factor under a ruleset that does not self-tune (it changes no budget there)."""
    return RULESET_SIZE_KEYS + (() if ruleset.self_tuning else ("self_tuning_budget_factor",))


def sweep_settings(cfg: RunConfig, workloads: list[str], frameworks: list[str]) -> dict[str, Any]:
    """What sweep.json holds: the trial settings (dotted keys), and the hardware profile's
    settings per workload/framework (a sweep may grow by workloads)."""
    settings: dict[str, Any] = {}
    for key, value in dataclasses.asdict(cfg).items():
        if key in NOT_SETTINGS:
            continue
        if key == "hardware":
            settings["hardware"] = value["name"]
        elif isinstance(value, dict):
            for name, item in _flatten(value, key).items():
                if not (key == "ruleset" and name.split(".")[-1] in _ruleset_skipped(cfg.ruleset)):
                    settings[name] = item
        else:
            settings[key] = value
    per_workload = {
        f"{w}/{fw}": dataclasses.asdict(workload_settings(cfg.hardware, w, fw))
        for w in workloads
        for fw in frameworks
    }
    # Through JSON, so values compare as they will be read back (tuples as lists, ...).
    return json.loads(json.dumps({"settings": settings, "workloads": per_workload}))


def _flatten(mapping: dict[str, Any], prefix: str) -> dict[str, Any]:
    flat: dict[str, Any] = {}
    for key, value in mapping.items():
        name = f"{prefix}.{key}"
        if isinstance(value, dict) and value:
            flat.update(_flatten(value, name))
        else:
            flat[name] = value
    return flat


def check_sweep_settings(folder: Path, cfg: RunConfig, workloads: list[str], frameworks: list[str]) -> None:
    """Write the sweep's settings on its first launch; refuse a re-run that asks for others."""
    requested = sweep_settings(cfg, workloads, frameworks)
    path = folder / SETTINGS_NAME
    if store.write_json_atomically(path, {**requested, "created_at": _now()}, only_if_new=True):
        return
    try:
        recorded = json.loads(path.read_text())
        recorded_settings, recorded_workloads = recorded["settings"], recorded["workloads"]
    except (OSError, ValueError, KeyError, TypeError) as e:
        raise AlgoperfError(
            f"{path} is damaged ({e}); restore it, or choose another sweep name (sweep=NAME)."
        ) from None
    wanted = requested["settings"]
    differing = [
        f"{key}: recorded {_shown(recorded_settings, key)}, requested {_shown(wanted, key)}"
        for key in sorted(set(recorded_settings) | set(wanted))
        if recorded_settings.get(key, _UNSET) != wanted.get(key, _UNSET)
        # a key added to the schema after the sweep started, at its null default, asks for nothing new
        and not (key not in recorded_settings and wanted.get(key) is None)
    ]
    for pair, settings in requested["workloads"].items():
        old = recorded_workloads.get(pair)
        differing += [
            f"hardware settings of {pair}, {key}: recorded {old.get(key)!r}, requested {value!r}"
            for key, value in settings.items()
            if old is not None and old.get(key) != value
        ]
    if differing:
        raise AlgoperfError(
            f"sweep {folder.name!r} was started with other settings ({'; '.join(differing)}). "
            f"Re-run with the recorded settings (see {path}), choose another sweep name "
            "(sweep=NAME), or add new_sweep=true to have a fresh name picked."
        )
    added = {pair: s for pair, s in requested["workloads"].items() if pair not in recorded_workloads}
    if added:  # the sweep grows by workloads or frameworks: note their profile settings too
        store.write_json_atomically(path, {**recorded, "workloads": {**recorded_workloads, **added}})


_UNSET = object()


def _shown(settings: dict[str, Any], key: str) -> str:
    return repr(settings[key]) if key in settings else "(not set)"


def _now() -> str:
    return dt.datetime.now(dt.UTC).isoformat(timespec="seconds")


def _fresh_sweep_name(results_dir: Path, name: str) -> str:
    """`name` if no sweep has that folder yet, else the first free `name-2`, `name-3`, ..."""
    candidate, k = name, 2
    while (results_dir / candidate).exists():
        candidate, k = f"{name}-{k}", k + 1
    return candidate


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

    argv, full_error = sys.argv, os.environ.get("HYDRA_FULL_ERROR")
    sys.argv = ["algoperf-sweep", *hydra_args]
    # Hydra turns any exception into a printed traceback and exit 1; launch_until_done needs the
    # launcher's (a dead worker) to launch again.
    os.environ["HYDRA_FULL_ERROR"] = "1"
    try:
        job()
    finally:
        sys.argv = argv
        if full_error is None:
            os.environ.pop("HYDRA_FULL_ERROR", None)
        else:
            os.environ["HYDRA_FULL_ERROR"] = full_error


def run_job(job_cfg: DictConfig) -> int:
    """One Hydra job: run the trial in a fresh process unless it is already complete."""
    from hydra.core.hydra_config import HydraConfig

    exit_with_sweep()  # first: a launcher worker must die with the sweep even if it runs no trial
    cfg: RunConfig = typed(job_cfg, RunConfig)
    source = find_submission(cfg.submission)
    directory = store.trial_dir_for(cfg, source.name)
    if store.is_complete(directory):
        return 0
    overrides = [o for o in HydraConfig.get().overrides.task if not o.startswith("hydra")]
    argv = ["run", *overrides, "progress=false"]
    command: list[str] | Callable[[], int] = [sys.executable, "-m", "algoperf.cli", *argv]
    directory.mkdir(parents=True, exist_ok=True)
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    if sweep_job_process():
        # A launcher worker: if it dies alone (killed, out of memory) its trial gets SIGTERM and
        # records that (watchdog.fail_trial_when_job_dies).
        env[SWEEP_JOB_ENV] = str(os.getpid())
        death_signal = signal.SIGTERM
        # It runs no trial itself and holds only imported modules: the trial is forked from it
        # (warm: no interpreter start, no framework import) rather than started afresh.
        if WARM_START:
            preload(cfg.framework)
            command = functools.partial(cli_main, argv)
    else:
        # The job runs in the sweep's main process: its trial dies with it, leaving no record,
        # so a re-run resumes it.
        death_signal = signal.SIGKILL
    outcome = run_watched(
        command,
        directory / "trial.log",
        trial_limits(cfg),
        env=env,
        preexec_fn=die_with_parent(death_signal),
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


# Trials of a sweep's job processes start warm (forked); ALGOPERF_WARM_START=0 starts each in a
# fresh interpreter instead (to compare the two, or to rule the fork out when debugging).
WARM_START = os.environ.get("ALGOPERF_WARM_START", "1") != "0"


def preload(framework: str) -> None:
    """Import what a trial process needs before it forks one (once per job process): the
    framework and the harness's trial modules. Imports only: no backend starts, no data loads."""
    import algoperf.cli
    import algoperf.config
    import algoperf.loggers
    import algoperf.runner
    import algoperf.supervisor  # noqa: F401
    from algoperf.frameworks import load_backend

    load_backend(framework)


def cli_main(argv: list[str]) -> int:
    """`algoperf run` in a trial forked from a job process (see `preload`)."""
    from hydra.core.global_hydra import GlobalHydra

    from algoperf.cli import main

    GlobalHydra.instance().clear()  # the job's multirun state: the trial composes its own config
    return main(argv)


def trial_limits(cfg: RunConfig) -> Limits:
    """Watchdog limits from the hardware profile: wall time = factor x budget + grace."""
    watchdog = cfg.hardware.watchdog
    settings = workload_settings(cfg.hardware, cfg.workload, cfg.framework)
    budget = cfg.ruleset.budget_s(settings.max_submission_time_s, cfg.max_submission_time_s)
    wall = watchdog.wall_time_factor * budget + watchdog.grace_s
    memory = watchdog.memory_limit_gib
    return Limits(wall_time_s=wall, memory_gib=float(memory) if memory else None)


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
