"""One trial: choose its hyperparameters and budget, run it under a supervisor, file its record.

The submission runs in a worker process; the clock, the budget, the evaluation data, the
target and the record stay in the supervisor (algoperf.supervisor). What is timed: everything
the worker does between the supervisor letting it go and its report (data_selection,
update_params, prepare_for_eval, handing over its parameters); untimed: set-up, model and
optimizer init, evaluation, logging, writing results.

A complete trial is returned as recorded, if it was run with the settings asked for now; an
overwrite runs beside the trial's folder and swaps its folder in only once its record is
written, so an interrupted overwrite leaves the old record and evals.csv as they were.
"""

from __future__ import annotations

import math
import os
import shutil
import sys
import time
import traceback
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from algoperf import results as store
from algoperf.errors import AlgoperfError
from algoperf.frameworks import load_backend
from algoperf.hardware import WorkloadSettings, fingerprint, workload_settings
from algoperf.identity import snapshot_submission
from algoperf.ledger import Ledger
from algoperf.plugins import (
    REPO_ROOT,
    SubmissionSource,
    find_submission,
    framework_problem,
    workload_class,
    workload_source_sha256,
)
from algoperf.provenance import software_versions
from algoperf.record import TrialRecord, now_iso
from algoperf.signing import key_path
from algoperf.supervisor import Supervisor, TrialPlan, plan_confinement, release_confinement
from algoperf.tuning import derive_seed, load_search_space, trial_hparams
from algoperf.watchdog import JobProcessDied

if TYPE_CHECKING:
    from algoperf.schema import RunConfig


def run_trial(
    cfg: RunConfig,
    progress: bool = True,
    callbacks: list[Callable[[str, dict[str, Any]], None]] | None = None,
) -> dict[str, Any]:
    """Run one trial and write its record; a complete trial already on disk is returned as is
    (if it was run with the settings asked for now; AlgoperfError otherwise).

    Configuration errors (unknown names, bad profile) raise AlgoperfError before anything is
    written. Everything that goes wrong inside the trial is recorded (status failed/diverged).
    """
    resolved = Resolved.of(cfg)  # unknown names fail here, before anything is written
    directory = store.trial_dir_for(cfg, resolved.source.name)
    store.undo_interrupted_swap(directory)
    if store.is_complete(directory) and not cfg.overwrite:
        return recorded_as_requested(cfg, resolved, directory)
    emit = _emitter(callbacks)
    with store.claim(directory):
        if not store.is_complete(directory):
            return _run_recorded(cfg, resolved, directory, emit, progress)
        if not cfg.overwrite:  # finished while we waited
            return recorded_as_requested(cfg, resolved, directory)
        return _overwrite(cfg, resolved, directory, emit, progress)


@dataclass(frozen=True)
class Resolved:
    """A run configuration's names resolved: the submission folder, the workload class and the
    hardware profile's settings for it."""

    source: SubmissionSource
    cls: type
    settings: WorkloadSettings

    @classmethod
    def of(cls, cfg: RunConfig) -> Resolved:
        source = find_submission(cfg.submission)
        problem = framework_problem(source, cfg.framework)
        if problem:
            raise AlgoperfError(problem)
        workload = workload_class(cfg.workload, cfg.framework)
        return cls(source, workload, workload_settings(cfg.hardware, cfg.workload, cfg.framework))


# ---- a complete trial asked for again -------------------------------------------------------------


def recorded_as_requested(cfg: RunConfig, resolved: Resolved, directory: Path) -> dict[str, Any]:
    """The record of a complete trial, if it was run with the settings asked for now: returning
    a record of other settings would pass it off as the requested run."""
    record = store.read_record(directory / store.RECORD_NAME)
    requested = {**run_settings(cfg, resolved), "hparams": _hparams_of(cfg, resolved)}
    differing = []
    for key, wanted in requested.items():
        have = record.get(key)
        if key == "hparams":
            # Every value, not only overrides: another search space (search_space=) or an
            # edited one gives the same trial other hyperparameters.
            if have:  # empty: the trial failed before choosing them
                differing += [
                    f"hparams.{name}: recorded {have.get(name, '(not set)')!r}, requested {value!r}"
                    for name, value in wanted.items()
                    if name not in have or not _same(have[name], value)
                ]
                differing += [
                    f"hparams.{name}: recorded {have[name]!r}, not requested"
                    for name in have
                    if name not in wanted
                ]
        elif have is None and key != "max_steps":
            continue  # not recorded (a trial whose process died early)
        elif not _same(have, wanted):
            shown = "seed" if key == "root_seed" else key
            differing.append(f"{shown}: recorded {have!r}, requested {wanted!r}")
    if differing:
        raise AlgoperfError(
            f"trial {directory} is complete with other settings ({'; '.join(differing)}). Re-run "
            "with the recorded settings, add overwrite=true to replace it, or choose another sweep "
            "name (sweep=NAME)."
        )
    return record


def _same(have: Any, wanted: Any) -> bool:
    if isinstance(have, float) or isinstance(wanted, float):
        try:
            return math.isclose(float(have), float(wanted), rel_tol=1e-9)
        except (TypeError, ValueError):
            return False
    return have == wanted


# ---- running it -------------------------------------------------------------------------------


def _run_recorded(cfg, resolved, directory, emit, progress) -> dict[str, Any]:
    """_run_claimed, and a record even when the sweep's job process dies outside the supervised
    part (planning, writing): the sweep must not run the trial again."""
    try:
        return _run_claimed(cfg, resolved, directory, emit, progress)
    except JobProcessDied as e:
        if not store.is_complete(directory):
            record = new_record(cfg, resolved)
            record.fail(str(e))
            record.ended_at = now_iso()
            store.write_record(directory, record.to_dict())
        return store.read_record(directory / store.RECORD_NAME)


def _run_claimed(cfg, resolved, directory, emit, progress) -> dict[str, Any]:
    wall_start = time.perf_counter()
    record = new_record(cfg, resolved)
    # A user's mistake (a malformed search space, an unusable submission folder) raises here,
    # before anything is written.
    plan = plan_trial(cfg, resolved, record)
    try:
        directory.mkdir(parents=True, exist_ok=True)
        log = store.EvalLog(directory)
        emit("start", {"config": cfg, "record": record.to_dict(), "directory": directory})
        try:
            Supervisor(plan, record, log, emit, progress).run()
        except JobProcessDied as e:  # its own message says it all; no traceback
            record.fail(str(e))
        except Exception as e:  # a failing submission is a result, not a crash of the harness
            record.fail("".join(traceback.format_exception(type(e), e, e.__traceback__)))
        finally:
            log.close()
    finally:
        release_confinement(plan.confinement)
    record.ended_at = now_iso()
    record.wall_time_s = time.perf_counter() - wall_start
    store.write_record(directory, record.to_dict())
    emit("end", {"record": record.to_dict(), "directory": directory})
    return store.read_record(directory / store.RECORD_NAME)


def run_settings(cfg: RunConfig, resolved: Resolved) -> dict[str, Any]:
    """The record fields a trial's settings fix (a re-run asking for others is refused)."""
    settings = resolved.settings
    return {
        "root_seed": cfg.seed,
        "max_submission_time_s": cfg.ruleset.budget_s(
            settings.max_submission_time_s, cfg.max_submission_time_s
        ),
        "eval_every_steps": cfg.eval_every_steps or settings.eval_every_steps,
        "eval_period_s": None if cfg.eval_every_steps else settings.eval_period_s,
        "max_steps": cfg.max_steps,
        "stop_at_target": cfg.stop_at_target,
    }


def new_record(cfg: RunConfig, resolved: Resolved) -> TrialRecord:
    """The record as it stands before the trial runs: identity, settings, provenance."""
    source, cls, settings = resolved.source, resolved.cls, resolved.settings
    return TrialRecord(
        sweep=cfg.sweep,
        workload=cfg.workload,
        variant=cls.variant,
        framework=cfg.framework,
        submission=source.name,
        submission_folder=str(source.folder.resolve()),
        workload_sha256=workload_source_sha256(cfg.workload),
        ruleset=cfg.ruleset.name,
        hardware_profile=cfg.hardware.name,
        size=settings.size,
        study=cfg.study,
        trial=cfg.trial if cfg.trial is not None else 0,
        hparams_source="defaults" if cfg.trial is None else "search",
        seed=derive_seed(cfg.seed, "trial", cfg.study, cfg.trial or 0),
        **run_settings(cfg, resolved),
        target=cls.sizes[settings.size].target,
        metric_name=cls.metric_name,
        metric_higher_is_better=cls.metric_higher_is_better,
        hardware=fingerprint(),
        software=software_versions(cfg.framework),
    )


def plan_trial(cfg: RunConfig, resolved: Resolved, record: TrialRecord) -> TrialPlan:
    """Hyperparameters, seeds, threads, the ledger and the worker's confinement of one trial."""
    source, cls, settings = resolved.source, resolved.cls, resolved.settings
    record.hparams = _hparams_of(cfg, resolved)
    fw = load_backend(cfg.framework)
    threads = int(cfg.threads or cfg.hardware.threads_per_trial or fw.default_threads())
    record.threads = threads
    fw.set_threads(threads)  # the supervisor evaluates with the same share of the cores
    fw.seed_everything(record.seed)
    confinement = plan_confinement(hidden=hidden_from_worker(cfg, cls), needed=worker_needs())
    snapshot = Path(confinement.writable[0]) / "submission"
    try:
        identity = snapshot_submission(source.folder, snapshot)
    except BaseException:
        release_confinement(confinement)
        raise
    record.submission_sha256, record.submission_files = identity["tree_sha256"], identity["files"]
    record.isolation = {
        "separate_process": True,
        "hidden": confinement.hidden,
        "unprivileged_uid": confinement.uid,
    }
    return TrialPlan(
        workload_cls=cls,
        framework=cfg.framework,
        size=settings.size,
        data_dir=cfg.data_dir,
        step_hint=int(cfg.step_hint) if cfg.step_hint else None,
        submission_name=source.name,
        submission_dir=snapshot,
        submission_entry=(
            str(source.algoperf_entry.relative_to(source.folder)) if source.algoperf_entry else None
        ),
        submission_folder_name=source.alias,
        hparams=record.hparams,
        seeds={
            "trial": record.seed,
            "model": derive_seed(record.seed, "model"),
            "data": derive_seed(record.seed, "data"),
            "update": derive_seed(record.seed, "update"),
        },
        threads=threads,
        ledger=Ledger(
            budget_s=record.max_submission_time_s,
            eval_every_steps=record.eval_every_steps,
            eval_period_s=record.eval_period_s,
            max_steps=cfg.max_steps,
        ),
        stop_at_target=cfg.stop_at_target,
        eval_test_every=settings.eval_test == "every",
        confinement=confinement,
        label=f"{source.name}/{cfg.workload}/{cfg.framework} s{cfg.study} t{record.trial}",
    )


def _hparams_of(cfg: RunConfig, resolved: Resolved) -> dict[str, Any]:
    space = load_search_space(resolved.source.folder, cfg.search_space)
    return trial_hparams(space, cfg.ruleset.name, cfg.seed, cfg.study, cfg.trial, cfg.hparams)


# ---- overwriting a complete trial -----------------------------------------------------------------


def _overwrite(cfg, resolved, directory: Path, emit, progress) -> dict[str, Any]:
    """Run a complete trial again in a hidden staging folder beside its own, then swap the two
    folders in one step: until the new record is written the old record.json and evals.csv
    stay in place as a pair, whatever interrupts the run. Called holding the trial's claim."""
    staging = store.beside(directory, "overwrite")
    shutil.rmtree(staging, ignore_errors=True)  # what an interrupted overwrite left
    shutil.rmtree(store.beside(directory, "old"), ignore_errors=True)
    try:
        # The staging folder's claim becomes the trial folder's in the swap, so the trial stays
        # claimed throughout.
        with store.claim(staging):
            _run_recorded(cfg, resolved, staging, emit, progress)
            store.exchange_folders(staging, directory)
    finally:
        shutil.rmtree(staging, ignore_errors=True)  # the old folder now, or a broken run's
    return store.read_record(directory / store.RECORD_NAME)


def hidden_from_worker(cfg: RunConfig, cls: type) -> list[Path]:
    """What the worker must not read: every results tree we know of, the record-signing key, and
    the workload's data (it receives the training split from the supervisor)."""
    hidden = [Path(cfg.results_dir), REPO_ROOT / "results", key_path()]
    hidden += [Path(p) for p in cls.data_locations(cfg.data_dir)]
    return hidden


def worker_needs() -> list[Path]:
    """What the worker must be able to read: the interpreter, its packages, the harness."""
    paths = [Path(sys.prefix), Path(sys.base_prefix), Path(sys.executable).resolve().parent, REPO_ROOT]
    paths += [Path(p) for p in os.environ.get("ALGOPERF_WORKLOADS_PATH", "").split(os.pathsep) if p]
    return paths


def _emitter(callbacks):
    def emit(event: str, payload: dict[str, Any]) -> None:
        for callback in callbacks or []:
            callback(event, payload)

    return emit
