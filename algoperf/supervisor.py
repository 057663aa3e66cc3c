"""The supervisor of a trial: the clock, the budget, the validation and test data, evaluation,
the target and the record. The submission runs in a separate worker process (algoperf.worker).

One eval interval: the supervisor reads its clock, thaws the worker and tells it how far to run;
the worker trains, prepares for eval and hands its parameters over through shared memory, then
reports; the supervisor reads its clock again, freezes the worker's whole process group, checks
that no process escaped it, and evaluates its own copy of the model. The worker's clock is
never read, and nothing of the worker runs while the supervisor evaluates, logs or writes.
"""

from __future__ import annotations

import math
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from algoperf import results as store
from algoperf.frameworks import load_backend
from algoperf.ipc import (
    Channel,
    ControlFlags,
    SharedBlock,
    layout_bytes,
    layout_to_json,
    plan_layout,
    share_arrays,
)
from algoperf.ledger import Ledger
from algoperf.record import TrialRecord
from algoperf.rules import RuleViolation
from algoperf.sandbox import Confinement, WorkerGroup, become_subreaper, children_of, unprivileged_user
from algoperf.spec import checked_diagnostics

# A worker that does not report within this long after its budget ran out is stopped.
OVERRUN_GRACE_S = 5.0


class WorkerOverran(Exception):
    """The worker ignored the stop request past its budget (plus grace) and was stopped."""


class WorkerDied(Exception):
    """The worker process ended on its own (crash, os._exit, a signal)."""


@dataclass
class TrialPlan:
    """Everything one trial needs, decided before the worker starts."""

    workload_cls: type
    framework: str
    size: str
    data_dir: str | None
    step_hint: int | None  # overrides the size's step hint (target setting)
    submission_name: str
    submission_dir: Path  # the snapshot the worker imports
    hparams: dict[str, Any]
    seeds: dict[str, int]  # trial, model, data, update
    threads: int
    ledger: Ledger
    submission_entry: str | None = None  # an AlgoPerf submission's file, relative to its folder
    submission_folder_name: str | None = None  # the folder's own name (AlgoPerf helper imports)
    stop_at_target: bool = True
    eval_test_every: bool = False  # evaluate the test split at every eval (else only at the end)
    confinement: Confinement = field(default_factory=lambda: Confinement([], []))
    label: str = ""


class Progress:
    """A compact progress line at each eval: step, submission time vs budget, validation metric."""

    def __init__(self, enabled: bool, label: str, budget_s: float, metric: str, target: float):
        self.enabled, self.label, self.budget_s = enabled, label, budget_s
        self.metric, self.target = metric, target

    def show(self, global_step: int, submission_time_s: float, metric: float | None) -> None:
        if not self.enabled:
            return
        value = "—" if metric is None else f"{metric:.4f}"
        print(
            f"[{self.label}] step {global_step:>6} | submission time {submission_time_s:7.1f}s"
            f" / {self.budget_s:.0f}s | validation {self.metric} {value} (target {self.target})",
            flush=True,
        )


class Supervisor:
    """Runs one trial's worker; fills `record` in place so a failure keeps what was measured."""

    def __init__(
        self,
        plan: TrialPlan,
        record: TrialRecord,
        log: store.EvalLog,
        emit: Callable[[str, dict[str, Any]], None],
        progress: bool,
    ):
        self.plan, self.record, self.log, self.emit = plan, record, log, emit
        self.ledger = plan.ledger
        self.fw = load_backend(plan.framework)
        self.workload = plan.workload_cls(size=plan.size, data_dir=plan.data_dir)
        self.bar = Progress(
            progress, plan.label, self.ledger.budget_s, self.workload.metric_name, self.workload.target_value
        )
        self.blocks: list[SharedBlock] = []
        self.process: subprocess.Popen | None = None
        self.group: WorkerGroup | None = None
        self.last_eval: dict[str, Any] | None = None
        self.train_loss_sum, self.train_loss_count = 0.0, 0
        self.diagnostics: dict[str, float] = {}

    # ---- the trial ----------------------------------------------------------------------------
    def run(self) -> None:
        try:
            self._start_worker()  # first: its imports overlap with loading the data here
            self._prepare()
            self.record.status = self._train()
        except _SetupFailed:
            self.record.status = "failed"  # record.error holds the worker's traceback
        except (WorkerDied, RuleViolation) as e:
            self.record.fail(str(e))
        finally:
            self.record.submission_time_s = self.ledger.submission_time_s
            self.record.eval_time_s = self.ledger.eval_time_s
            self.record.global_steps = self.ledger.global_step
            self.close()
            self._settle_status()
        if self.record.status == "reached" and self.record.final_test is None:
            # The test metric of the model that reached the target (untimed, never shown to it).
            test = self.workload.eval_metrics(self.params, self.model_state, self.eval_splits["test"])
            self.record.final_test = float(test[self.workload.metric_name])

    def _settle_status(self) -> None:
        """One meaning per status: `reached` <=> a time to target (the loader refuses any other
        pairing). A trial that met the target and trained on (stop_at_target=false) is reached
        however it ended later; a failed one (a crash, a rule violation) keeps no time."""
        record = self.record
        if record.time_to_target_s is None or record.status == "reached":
            return
        if record.status in ("diverged", "training_complete", "budget_exhausted"):
            record.error = f"after reaching the target it went on and ended as {record.status}"
            record.status = "reached"
            return
        record.error = (
            f"{record.error}\n(It had met the target at {record.time_to_target_s:.3f} s, step "
            f"{record.steps_to_target}; a {record.status} trial's time does not count.)"
        )
        record.time_to_target_s = record.steps_to_target = None

    def _train(self) -> str:
        status = None
        while status is None:
            try:
                report = self._timed_interval()
            except WorkerOverran as e:
                self.record.error = str(e)
                return "reached" if self.record.time_to_target_s is not None else "budget_exhausted"
            status = self._after_interval(report)
        return status

    def _after_interval(self, report: dict[str, Any]) -> str | None:
        """What one report means: a final status, or None to go on."""
        if report.get("status") == "failed":
            self.record.error = str(report.get("error"))
            return "failed"
        self.record.compile_time_s = float(report.get("compile_time_s") or 0.0)
        self._log_submission_metrics(report.get("submission_metrics"))
        self._keep_diagnostics(report.get("diagnostics"))
        self.train_loss_sum += float(report.get("train_loss_sum") or 0.0)
        self.train_loss_count += int(report.get("train_loss_count") or 0)
        status = report.get("status")
        if status == "diverged":
            self._evaluate(final=True)
            return "diverged"
        if status == "training_complete":
            return (self._evaluate(final=True) if report.get("prepared") else None) or "training_complete"
        if self.ledger.over_budget or self.ledger.at_step_cap:
            reached = self.record.time_to_target_s is not None
            return self._evaluate(final=True) or ("reached" if reached else "budget_exhausted")
        if self.ledger.eval_due:
            return self._evaluate(final=False)
        return None

    def _keep_diagnostics(self, values: Any) -> None:
        """The submission's `diagnostics` scalars, logged with the next eval row as
        `plugin.<name>` columns (informational, never scored). Malformed ones are dropped."""
        try:
            self.diagnostics = checked_diagnostics(values) if values is not None else {}
        except ValueError:
            self.diagnostics = {}

    def _log_submission_metrics(self, metrics: Any) -> None:
        """What the submission logged through `workload.metrics_logger` (AlgoPerf submissions),
        kept beside evals.csv; informational, never scored. Malformed entries are dropped."""
        rows = []
        for entry in metrics if isinstance(metrics, list) else []:
            if not (isinstance(entry, list | tuple) and len(entry) == 2 and isinstance(entry[1], dict)):
                continue
            step, values = entry
            if not isinstance(step, int) or isinstance(step, bool):
                continue
            rows += [
                (step, str(name)[:100], float(value))
                for name, value in values.items()
                if isinstance(value, int | float) and not isinstance(value, bool)
            ]
        if rows:
            store.append_submission_metrics(self.log.path.parent, rows)

    # ---- the worker -------------------------------------------------------------------------
    def _start_worker(self) -> None:
        become_subreaper()
        ours, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_STREAM)
        self.channel = Channel(ours)
        confinement = self.plan.confinement
        env = {
            **os.environ,
            "TMPDIR": confinement.writable[0],
            "HOME": confinement.writable[0],
            "PYTHONDONTWRITEBYTECODE": "1",
            "PYTHONUNBUFFERED": "1",
        }
        # On a GPU both processes share the device: JAX must not preallocate most of it.
        env.setdefault("XLA_PYTHON_CLIENT_PREALLOCATE", "false")
        ids = {}
        if confinement.uid is not None:
            ids = {"user": confinement.uid, "group": confinement.gid, "extra_groups": []}
        adopted_before = children_of(os.getpid())
        self.process = subprocess.Popen(
            [sys.executable, "-m", "algoperf.worker", str(theirs.fileno()), str(os.getpid())],
            pass_fds=[theirs.fileno()],
            start_new_session=True,  # its own session and group: frozen and killed as one
            cwd=confinement.writable[0],
            env=env,
            **ids,
        )
        theirs.close()
        self.group = WorkerGroup(self.process.pid, adopted_before)

    def _prepare(self) -> None:
        """Data and model on the supervisor's side, then the worker's set-up (all untimed)."""
        plan, workload = self.plan, self.workload
        splits = workload.load_splits()
        train_block, train_layout = share_arrays("algoperf-train", splits.train)
        self.eval_splits = {
            "validation": workload.to_device(splits.validation),
            "test": workload.to_device(splits.test),
        }
        del splits
        self.params, self.model_state = workload.init_model_fn(plan.seeds["model"])
        state_layout = plan_layout(self.fw.state_layout(self.params, self.model_state))
        state_block = SharedBlock.create("algoperf-state", layout_bytes(state_layout))
        self.control = ControlFlags.create()
        self.blocks += [train_block, state_block, self.control.block]
        self.views = self.fw.state_views(state_block, state_layout)
        step_hint = plan.step_hint or workload.step_hint
        self.record.step_hint = int(step_hint)
        setup = {
            "type": "setup",
            "workload": workload.full_name,
            "framework": plan.framework,
            "size": plan.size,
            "step_hint": int(step_hint),
            "num_train_examples": workload.num_train_examples,
            "submission": plan.submission_name,
            "submission_dir": str(plan.submission_dir),
            "submission_entry": plan.submission_entry,
            "submission_folder_name": plan.submission_folder_name,
            "budget_s": self.ledger.budget_s,
            "eval_period_s": None if self.ledger.eval_every_steps else self.ledger.eval_period_s,
            "hparams": plan.hparams,
            "seeds": plan.seeds,
            "threads": plan.threads,
            "train_layout": layout_to_json(train_layout),
            "state_layout": layout_to_json(state_layout),
            "confinement": plan.confinement.to_json(),
        }
        self.channel.send(setup, fds=[train_block.fd, state_block.fd, self.control.block.fd])
        ready = self._receive()
        if ready.get("type") != "ready":
            self.record.error = str(ready.get("error"))
            raise _SetupFailed
        self.record.batch_size = int(ready["batch_size"])
        self.record.adaptations = [str(line) for line in ready.get("adaptations") or []]
        self.record.isolation = {**self.record.isolation, **dict(ready.get("isolation") or {})}
        self.group.freeze()
        self._check_group()
        self.wall_start = time.perf_counter()

    def _timed_interval(self) -> dict[str, Any]:
        """Let the worker run to its next report; credit the interval on the supervisor's clock."""
        self.control.clear_stop()
        message = {
            "type": "run",
            "until_step": self.ledger.stop_step(),
            "eval_result": self.last_eval,
            "submission_time_s": self.ledger.submission_time_s,
        }
        start = self.ledger.clock()  # before the thaw: everything after it is the submission's
        self.group.thaw()
        self.channel.send(message)
        try:
            report = self._await_report(start)
            end = self.ledger.clock()
        except WorkerOverran:
            self.ledger.add_interval(self.ledger.clock() - start, self.ledger.global_step)
            raise
        finally:
            self.group.freeze()
        self._check_group()
        report = self._validated(report)
        self.ledger.add_interval(end - start, report["step"])
        return report

    def _validated(self, report: dict[str, Any]) -> dict[str, Any]:
        """The worker is untrusted: a report that is not what the worker code sends is a violation."""
        problems = []
        if report.get("type") != "report":
            problems.append(f"type {report.get('type')!r}")
        step = report.get("step")
        if not isinstance(step, int) or isinstance(step, bool) or step < self.ledger.global_step:
            problems.append(f"step {step!r} after step {self.ledger.global_step}")
        if report.get("status") not in (None, "diverged", "training_complete", "failed"):
            problems.append(f"status {report.get('status')!r}")
        for key in ("train_loss_sum", "compile_time_s"):
            if not isinstance(report.get(key, 0.0), (int, float)):
                problems.append(f"{key} {report.get(key)!r}")
        if not isinstance(report.get("train_loss_count", 0), int):
            problems.append(f"train_loss_count {report.get('train_loss_count')!r}")
        if problems:
            raise RuleViolation("rule violation: malformed report from the worker: " + "; ".join(problems))
        return report

    def _await_report(self, start: float) -> dict[str, Any]:
        """The worker's report, raising the stop flag when an eval or the budget falls due."""
        while True:
            elapsed = self.ledger.clock() - start
            budget_left = self.ledger.seconds_left() - elapsed
            if self.control.stop_requested:
                wait = budget_left + OVERRUN_GRACE_S
                if wait <= 0:
                    self.group.kill()
                    raise WorkerOverran(
                        f"the worker did not stop within {OVERRUN_GRACE_S:.0f} s of its budget "
                        f"({self.ledger.budget_s:.0f} s); stopped. The last evaluation stands."
                    )
            else:
                eval_left = self.ledger.seconds_to_eval()
                wait = min(budget_left, math.inf if eval_left is None else eval_left - elapsed)
                if wait <= 0:
                    self.control.request_stop()
                    continue
            if self.channel.poll(wait):
                return self._receive()

    def _receive(self) -> dict[str, Any]:
        try:
            message, _ = self.channel.recv()
        except (EOFError, ConnectionError, ValueError) as e:
            raise WorkerDied(self._death_notice(e)) from None
        return message

    def _death_notice(self, cause: Exception) -> str:
        code = self.process.wait() if self.process else None
        how = (
            f"was killed by signal {signal.Signals(-code).name}"
            if code is not None and code < 0
            else f"exited with code {code}"
        )
        detail = "" if isinstance(cause, EOFError) else f" ({cause})"
        return f"the worker process {how} without reporting{detail}; its submission ended the trial."

    def _check_group(self) -> None:
        escaped = self.group.escaped()
        if escaped:
            raise RuleViolation(
                f"rule violation: process(es) {escaped} of the submission left the worker's process "
                "group (setsid, setpgid or a double fork), so they could run while the harness "
                "evaluates. Run all work inside the worker's process group."
            )

    # ---- evaluation (untimed, worker frozen) ---------------------------------------------------
    def _evaluate(self, final: bool) -> str | None:
        record, ledger, workload = self.record, self.ledger, self.workload
        start = time.perf_counter()
        self.params, self.model_state = self.fw.import_state(self.params, self.model_state, self.views)
        record.param_transfer_s += time.perf_counter() - start
        start = time.perf_counter()
        validation = workload.eval_metrics(self.params, self.model_state, self.eval_splits["validation"])
        test = (
            workload.eval_metrics(self.params, self.model_state, self.eval_splits["test"])
            if final or self.plan.eval_test_every
            else None
        )
        ledger.add_eval(time.perf_counter() - start)
        metric = float(validation[workload.metric_name])
        row = {
            "step": ledger.global_step,
            "submission_time_s": ledger.submission_time_s,
            "eval_time_s": ledger.eval_time_s,
            "wall_time_s": time.perf_counter() - self.wall_start,
            "train_loss": self.train_loss_sum / self.train_loss_count if self.train_loss_count else None,
            "validation_loss": float(validation["loss"]),
            "validation_metric": metric,
            "test_loss": float(test["loss"]) if test else None,
            "test_metric": float(test[workload.metric_name]) if test else None,
            **{f"plugin.{name}": value for name, value in self.diagnostics.items()},
        }
        self.log.append(row)
        self.emit("eval", {"row": row, "record": record.to_dict()})
        self.last_eval = {"step": ledger.global_step, "metrics": {k: float(v) for k, v in validation.items()}}
        self.train_loss_sum, self.train_loss_count = 0.0, 0
        record.num_evals += 1
        record.final_validation, record.final_test = metric, row["test_metric"]
        if math.isfinite(metric) and (
            record.best_validation is None
            or (
                metric > record.best_validation
                if workload.metric_higher_is_better
                else metric < record.best_validation
            )
        ):
            record.best_validation = metric
        self.bar.show(ledger.global_step, ledger.submission_time_s, metric)
        if not (math.isfinite(metric) and math.isfinite(row["validation_loss"])):
            return "diverged"
        if workload.has_reached_target(metric) and ledger.within_budget() and record.time_to_target_s is None:
            record.time_to_target_s = ledger.submission_time_s
            record.steps_to_target = ledger.global_step
            if self.plan.stop_at_target:
                return "reached"
        return None

    def close(self) -> None:
        if self.group is not None:
            self.group.kill()
        if self.process is not None:
            self.process.wait()
        if hasattr(self, "channel"):
            self.channel.close()
        for block in self.blocks:
            block.close()


class _SetupFailed(Exception):
    """The worker failed before training (import, init, init_optimizer_state): record.error says why."""


def plan_confinement(hidden: list[Path], needed: list[Path]) -> Confinement:
    """Hide `hidden` from the worker (except any folder that holds what it needs to run), give it
    a private temporary folder, and an unprivileged user when the harness runs as root."""
    private = Path(tempfile.mkdtemp(prefix="algoperf-worker-"))
    needed = [p.resolve() for p in [*needed, private]]
    holes = []
    for path in hidden:
        path = path.expanduser().resolve()
        if any(path == p or path in p.parents for p in needed):
            continue  # hiding it would hide the harness itself
        holes.append(str(path))
    # Extra folders a test or a site lets workers write to (e.g. a log of runs).
    extra = [p for p in os.environ.get("ALGOPERF_WORKER_WRITABLE", "").split(os.pathsep) if p]
    ids = unprivileged_user(needed)
    if ids is not None:
        os.chown(private, *ids)
        private.chmod(0o700)
    return Confinement(
        hidden=sorted(set(holes)),
        writable=[str(private), *extra],
        uid=ids[0] if ids else None,
        gid=ids[1] if ids else None,
    )


def release_confinement(confinement: Confinement) -> None:
    shutil.rmtree(confinement.writable[0], ignore_errors=True)
