"""One timed trial: the timing ledger.

Timed (the submission time): data_selection + update_params, and prepare_for_eval, each
followed by a device sync before the clock is read. Untimed: setup, model and optimizer init,
evaluation, logging, writing results. The budget is checked after every step.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import importlib
import math
import time
import traceback
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from algoperf import results as store
from algoperf.hardware import fingerprint, workload_settings
from algoperf.plugins import (
    find_submission,
    load_submission,
    workload_class,
    workload_source_sha256,
)
from algoperf.provenance import software_versions
from algoperf.rules import WorkloadView, check_param_shapes
from algoperf.spec import Hyperparameters, TrainingComplete
from algoperf.tuning import SearchSpace, derive_seed, trial_hparams


@dataclass
class TrialConfig:
    workload: str
    submission: str  # registered name or path
    framework: str = "torch"
    ruleset: str = "external"
    study: int = 0
    trial: int | None = None  # None: the search space's defaults
    seed: int = 0  # the sweep's root seed
    hardware: dict[str, Any] = field(default_factory=dict)  # a loaded hardware profile
    results_dir: str = "results"
    sweep: str = "default"
    hparams: dict[str, Any] = field(default_factory=dict)  # overrides of single values
    self_tuning_budget_factor: float = 1.5
    max_submission_time_s: float | None = None  # overrides the profile's budget
    eval_every_steps: int | None = None  # overrides the profile's eval schedule
    max_steps: int | None = None  # hard step cap (tests); reaching it ends as budget_exhausted
    stop_at_target: bool = True  # False: train on to the budget/max_steps (target setting)
    step_hint: int | None = None  # overrides the size's step hint (target setting)
    data_dir: str | None = None
    threads: int | None = None
    overwrite: bool = False


class Progress:
    """A compact progress line: step, submission time vs budget, last validation metric."""

    def __init__(self, enabled: bool, label: str, budget_s: float, metric: str, target: float):
        self.enabled, self.label, self.budget_s = enabled, label, budget_s
        self.metric, self.target = metric, target
        self.last_metric: float | None = None
        self._last_print = 0.0

    def step(self, global_step: int, submission_time_s: float, force: bool = False) -> None:
        now = time.monotonic()
        if not self.enabled or (not force and now - self._last_print < 5.0):
            return
        self._last_print = now
        metric = "—" if self.last_metric is None else f"{self.last_metric:.4f}"
        print(
            f"[{self.label}] step {global_step:>6} | submission time {submission_time_s:7.1f}s"
            f" / {self.budget_s:.0f}s | validation {self.metric} {metric} (target {self.target})",
            flush=True,
        )


def _now() -> str:
    return dt.datetime.now(dt.UTC).isoformat(timespec="seconds")


def run_trial(
    cfg: TrialConfig,
    progress: bool = True,
    callbacks: list[Callable[[str, dict[str, Any]], None]] | None = None,
) -> dict[str, Any]:
    """Run one trial and write its record; a complete trial already on disk is returned as is.

    Configuration errors (unknown names, bad profile) raise AlgoperfError before anything is
    written. Everything that goes wrong inside the trial is recorded (status failed/diverged).
    """
    started_at, wall_start = _now(), time.perf_counter()
    source = find_submission(cfg.submission)
    cls = workload_class(cfg.workload, cfg.framework)
    settings = workload_settings(cfg.hardware, cfg.workload, cfg.framework)
    directory = store.trial_dir_for(cfg, source.name)
    if store.is_complete(directory) and not cfg.overwrite:
        return store.read_record(directory / store.RECORD_NAME)
    with store.claim(directory):
        if store.is_complete(directory) and not cfg.overwrite:  # finished while we waited
            return store.read_record(directory / store.RECORD_NAME)
        return _run_claimed(
            cfg, source, cls, settings, directory, progress, callbacks, started_at, wall_start
        )


def _run_claimed(cfg, source, cls, settings, directory, progress, callbacks, started_at, wall_start):
    space = SearchSpace.from_yaml(source.search_space_path)
    hparams = trial_hparams(space, cfg.ruleset, cfg.seed, cfg.study, cfg.trial, cfg.hparams)

    budget_s = cfg.max_submission_time_s or settings.max_submission_time_s
    if cfg.ruleset == "self" and cfg.max_submission_time_s is None:
        budget_s *= cfg.self_tuning_budget_factor
    eval_every_steps = cfg.eval_every_steps or settings.eval_every_steps
    eval_period_s = None if cfg.eval_every_steps else settings.eval_period_s
    trial_seed = derive_seed(cfg.seed, "trial", cfg.study, cfg.trial or 0)

    fw = importlib.import_module(f"algoperf.frameworks.{cfg.framework}")
    threads = int(cfg.threads or cfg.hardware.get("threads_per_trial") or fw.default_threads())
    fw.set_threads(threads)
    fw.seed_everything(trial_seed)

    record: dict[str, Any] = {
        "schema_version": store.SCHEMA_VERSION,
        "sweep": cfg.sweep,
        "workload": cfg.workload,
        "variant": cls.variant,
        "framework": cfg.framework,
        "submission": source.name,
        "submission_sha256": None,
        "submission_path": str(source.file(cfg.framework).resolve()),
        "workload_sha256": workload_source_sha256(cfg.workload),
        "ruleset": cfg.ruleset,
        "hardware_profile": cfg.hardware.get("name"),
        "size": settings.size,
        "study": cfg.study,
        "trial": cfg.trial if cfg.trial is not None else 0,
        "hparams_source": "defaults" if cfg.trial is None else "search",
        "seed": trial_seed,
        "root_seed": cfg.seed,
        "hparams": hparams,
        "batch_size": None,
        "status": "failed",
        "time_to_target_s": None,
        "steps_to_target": None,
        "submission_time_s": 0.0,
        "eval_time_s": 0.0,
        "compile_time_s": 0.0,
        "wall_time_s": None,
        "global_steps": 0,
        "max_submission_time_s": budget_s,
        "eval_every_steps": eval_every_steps,
        "eval_period_s": eval_period_s,
        "target": cls.sizes[settings.size].target,
        "metric_name": cls.metric_name,
        "metric_higher_is_better": cls.metric_higher_is_better,
        "best_validation": None,
        "final_validation": None,
        "final_test": None,
        "num_evals": 0,
        "hardware": fingerprint(),
        "threads": threads,
        "software": software_versions(cfg.framework),
        "started_at": started_at,
        "ended_at": None,
        "error": None,
    }
    directory.mkdir(parents=True, exist_ok=True)
    log = store.EvalLog(directory)
    emit = _emitter(callbacks)
    emit("start", {"config": cfg, "record": record, "directory": directory})
    try:
        _train(
            cfg,
            fw,
            cls,
            settings,
            source,
            record,
            log,
            budget_s,
            eval_every_steps,
            eval_period_s,
            trial_seed,
            progress,
            emit,
        )
    except Exception as e:  # a failing submission is a result, not a crash of the harness
        record["status"] = "failed"
        record["error"] = "".join(traceback.format_exception(type(e), e, e.__traceback__))
    finally:
        log.close()
    record["ended_at"] = _now()
    record["wall_time_s"] = time.perf_counter() - wall_start
    store.write_record(directory, record)
    emit("end", {"record": record, "directory": directory})
    return record


def _emitter(callbacks):
    def emit(event: str, payload: dict[str, Any]) -> None:
        for callback in callbacks or []:
            callback(event, payload)

    return emit


def _train(
    cfg,
    fw,
    cls,
    settings,
    source,
    record,
    log,
    budget_s,
    eval_every_steps,
    eval_period_s,
    trial_seed,
    progress,
    emit,
) -> None:
    """The trial proper; fills `record` in place so a failure keeps everything measured so far."""
    submission = load_submission(source, cfg.framework)
    record["submission_sha256"] = submission.sha256
    workload = cls(size=settings.size, data_dir=cfg.data_dir)
    if cfg.step_hint:
        workload.sizes = {
            **cls.sizes,
            settings.size: dataclasses.replace(cls.sizes[settings.size], step_hint=int(cfg.step_hint)),
        }
    record["step_hint"] = workload.step_hint
    splits = workload.load_splits()
    train = workload.to_device(splits.train)
    eval_splits = {"validation": workload.to_device(splits.validation)}
    eval_splits["test"] = workload.to_device(splits.test)
    del splits

    params, model_state = workload.init_model_fn(derive_seed(trial_seed, "model"))
    # get_batch_size may return None for "the workload's default" (e.g. an unknown workload).
    batch_size = (
        submission.get_batch_size(workload.full_name) if submission.get_batch_size else None
    ) or workload.default_batch_size
    record["batch_size"] = int(batch_size)
    input_queue = workload.train_batches(train, int(batch_size), derive_seed(trial_seed, "data"))
    hyperparameters = Hyperparameters(record["hparams"])
    initial_shapes = dict(workload.param_shapes)
    view = WorkloadView(workload)  # what the submission may see of the workload
    update_seed = derive_seed(trial_seed, "update")
    optimizer_state = submission.init_optimizer_state(
        workload=view,
        model_params=params,
        model_state=model_state,
        hyperparameters=hyperparameters,
        rng=fw.step_rng(update_seed, -1),
    )
    param_types = workload.param_types
    compile_start = fw.compile_time_s()

    label = f"{submission.name}/{workload.full_name}/{cfg.framework} s{cfg.study} t{record['trial']}"
    bar = Progress(progress, label, budget_s, workload.metric_name, workload.target_value)
    submission_time_s = 0.0
    eval_time_s = 0.0
    global_step = 0
    last_eval_step = 0
    last_eval_time_s = 0.0
    eval_results: list[tuple[int, dict[str, float]]] = []
    train_loss_sum, train_loss_count = 0.0, 0
    best = None
    status = None

    def evaluate(final: bool) -> str | None:
        """Untimed evaluation (prepare_for_eval is timed); returns a final status or None."""
        nonlocal submission_time_s, eval_time_s, optimizer_state, params, model_state
        nonlocal last_eval_step, last_eval_time_s, train_loss_sum, train_loss_count, best
        if submission.prepare_for_eval is not None:
            start = time.perf_counter()
            optimizer_state, params, model_state = submission.prepare_for_eval(
                workload=view,
                current_param_container=params,
                current_params_types=param_types,
                model_state=model_state,
                hyperparameters=hyperparameters,
                loss_type=workload.loss_type,
                optimizer_state=optimizer_state,
                eval_results=eval_results,
                global_step=global_step,
                rng=fw.step_rng(update_seed, global_step),
            )
            fw.sync(params, optimizer_state)
            submission_time_s += time.perf_counter() - start
        check_param_shapes(initial_shapes, fw.param_shapes(params))
        start = time.perf_counter()
        validation = workload.eval_metrics(params, model_state, eval_splits["validation"])
        test = (
            workload.eval_metrics(params, model_state, eval_splits["test"])
            if final or settings.eval_test == "every"
            else None
        )
        eval_time_s += time.perf_counter() - start
        metric = float(validation[workload.metric_name])
        row = {
            "step": global_step,
            "submission_time_s": submission_time_s,
            "eval_time_s": eval_time_s,
            "wall_time_s": time.perf_counter() - wall_start,
            "train_loss": train_loss_sum / train_loss_count if train_loss_count else None,
            "validation_loss": validation["loss"],
            "validation_metric": metric,
            "test_loss": test["loss"] if test else None,
            "test_metric": test[workload.metric_name] if test else None,
        }
        log.append(row)
        emit("eval", {"row": row, "record": record})
        eval_results.append((global_step, validation))
        train_loss_sum, train_loss_count = 0.0, 0
        last_eval_step, last_eval_time_s = global_step, submission_time_s
        record["num_evals"] += 1
        record["final_validation"] = metric
        record["final_test"] = row["test_metric"]
        if math.isfinite(metric) and (
            best is None or (metric > best if workload.metric_higher_is_better else metric < best)
        ):
            best = metric
            record["best_validation"] = best
        bar.last_metric = metric
        bar.step(global_step, submission_time_s, force=True)
        if not (math.isfinite(metric) and math.isfinite(validation["loss"])):
            return "diverged"
        if (
            workload.has_reached_target(metric)
            and submission_time_s <= budget_s
            and record["time_to_target_s"] is None
        ):
            record["time_to_target_s"] = submission_time_s
            record["steps_to_target"] = global_step
            if cfg.stop_at_target:
                return "reached"
        return None

    wall_start = time.perf_counter()
    try:
        while status is None:
            start = time.perf_counter()
            batch = submission.data_selection(
                workload=view,
                input_queue=input_queue,
                optimizer_state=optimizer_state,
                current_param_container=params,
                model_state=model_state,
                hyperparameters=hyperparameters,
                global_step=global_step,
                rng=fw.step_rng(update_seed, 2 * global_step),
            )
            optimizer_state, params, model_state = submission.update_params(
                workload=view,
                current_param_container=params,
                current_params_types=param_types,
                model_state=model_state,
                hyperparameters=hyperparameters,
                batch=batch,
                loss_type=workload.loss_type,
                optimizer_state=optimizer_state,
                eval_results=eval_results,
                global_step=global_step,
                rng=fw.step_rng(update_seed, 2 * global_step + 1),
            )
            fw.sync(params, optimizer_state)
            submission_time_s += time.perf_counter() - start
            global_step += 1

            loss = optimizer_state.get("last_loss") if isinstance(optimizer_state, dict) else None
            if loss is not None:
                loss = fw.to_float(loss)
                if not math.isfinite(loss):
                    evaluate(final=True)
                    status = "diverged"
                    break
                train_loss_sum += loss
                train_loss_count += 1
            due = (
                global_step - last_eval_step >= eval_every_steps
                if eval_every_steps
                else submission_time_s - last_eval_time_s >= eval_period_s
            )
            if submission_time_s >= budget_s or (cfg.max_steps and global_step >= cfg.max_steps):
                status = evaluate(final=True) or (
                    "reached" if record["time_to_target_s"] is not None else "budget_exhausted"
                )
            elif due:
                status = evaluate(final=False)
            bar.step(global_step, submission_time_s)
    except TrainingComplete:
        if last_eval_step != global_step or record["num_evals"] == 0:
            status = evaluate(final=True)
        status = status or "training_complete"
    finally:
        record["status"] = status or "failed"
        record["submission_time_s"] = submission_time_s
        record["eval_time_s"] = eval_time_s
        record["global_steps"] = global_step
        record["compile_time_s"] = fw.compile_time_s() - compile_start
    if status == "reached" and record["final_test"] is None:
        # The test metric of the model that reached the target (untimed, never shown to it).
        test = workload.eval_metrics(params, model_state, eval_splits["test"])
        record["final_test"] = float(test[workload.metric_name])
