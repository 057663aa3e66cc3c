"""The worker process of a trial: runs the submission with only what the rules give it.

It holds the training split, the model's parameters and state, the submission-facing part of
the workload and the trial's hyperparameters. It never holds the validation or test split, the
target, the record or the results folder, and it never reads the clock that counts: the
supervisor (algoperf.supervisor) starts it, lets it run one eval interval at a time, freezes it
in between, and times it from outside.

    python -m algoperf.worker SOCKET_FD SUPERVISOR_PID
"""

from __future__ import annotations

import dataclasses
import math
import socket
import sys
import traceback
from pathlib import Path
from typing import Any

import numpy as np

from algoperf.compat.workload import TrialTimes
from algoperf.frameworks import load_backend
from algoperf.ipc import Channel, ControlFlags, SharedBlock, layout_bytes, layout_from_json
from algoperf.rules import RuleViolation, WorkloadView
from algoperf.sandbox import Confinement, confine_self
from algoperf.spec import Hyperparameters, TrainingComplete, checked_diagnostics


class Worker:
    """One trial's training loop, driven by the supervisor's `run` messages."""

    def __init__(self, setup: dict[str, Any], fds: list[int], channel: Channel):
        self.channel = channel
        self.fw = load_backend(setup["framework"])
        self.fw.set_threads(int(setup["threads"]))
        self.isolation = confine_self(
            Confinement.from_json(setup["confinement"]), int(setup["supervisor_pid"])
        )
        self.fw.seed_everything(int(setup["seeds"]["trial"]))
        self.workload = _submission_workload(setup)
        self.train_block, self.state_block = self._map_blocks(setup, fds)
        self.params, self.model_state = self.workload.init_model_fn(int(setup["seeds"]["model"]))
        self.views = self._bind_state(setup)
        self.submission = _load_submission(setup)
        self.view = WorkloadView(self.workload)
        self.compat = self.submission.compat  # an AlgoPerf submission's adapter, else None
        if self.compat is not None:
            self.compat.configure(
                self.view,
                TrialTimes(float(setup["budget_s"]), _optional_float(setup.get("eval_period_s"))),
            )
        self.batch_size = int(
            (
                self.submission.get_batch_size(self.workload.full_name)
                if self.submission.get_batch_size
                else None
            )
            or self.workload.default_batch_size
        )
        train = self.workload.to_device(self._own_copy_of_train(setup))
        self.input_queue = self.workload.train_batches(train, self.batch_size, int(setup["seeds"]["data"]))
        self.hyperparameters = Hyperparameters(setup["hparams"])
        self.update_seed = int(setup["seeds"]["update"])
        self.optimizer_state = self.submission.init_optimizer_state(
            workload=self.view,
            model_params=self.params,
            model_state=self.model_state,
            hyperparameters=self.hyperparameters,
            rng=self.fw.step_rng(self.update_seed, -1),
        )
        self.param_types = self.workload.param_types
        self.global_step = 0
        self.reports = 0
        self.last_report_step = 0
        self.eval_results: list[tuple[int, dict[str, float]]] = []

    def _map_blocks(self, setup: dict[str, Any], fds: list[int]) -> tuple[SharedBlock, SharedBlock]:
        train_layout = layout_from_json(setup["train_layout"])
        state_layout = layout_from_json(setup["state_layout"])
        # Private (copy-on-write): the worker may write to its batches without touching the
        # supervisor's copy.
        train = SharedBlock(fds[0], layout_bytes(train_layout), private=True)
        state = SharedBlock(fds[1], layout_bytes(state_layout))
        self.control = ControlFlags(SharedBlock(fds[2], 64))
        return train, state

    def _own_copy_of_train(self, setup: dict[str, Any]) -> dict[str, Any]:
        """The training split in this process's own memory, then the shared block unmapped.

        Measured: batches gathered straight from the shared block made torch steps up to 10%
        slower than from ordinary memory (shared-memory pages get no transparent huge pages,
        and a random gather over a large split misses the TLB); the copy is untimed set-up.
        """
        views = self.train_block.numpy_views(layout_from_json(setup["train_layout"]))
        train = {name: np.array(view) for name, view in views.items()}
        del views
        self.train_block.close()
        return train

    def _bind_state(self, setup: dict[str, Any]) -> dict[str, Any]:
        layout = layout_from_json(setup["state_layout"])
        mine = self.fw.state_layout(self.params, self.model_state)
        if [(n, tuple(s)) for n, _, s, _ in mine] != [(s.name, s.shape) for s in layout]:
            raise RuntimeError("the worker's model differs from the supervisor's (same seed, same workload)")
        views = self.fw.state_views(self.state_block, layout)
        self.fw.bind_state(self.params, self.model_state, views)
        return views

    # ---- one timed interval ------------------------------------------------------------------
    def run(
        self, until_step: int | None, eval_result: dict[str, Any] | None, submission_time_s: float = 0.0
    ) -> dict[str, Any]:
        """Train until `until_step`, the supervisor's stop flag, the end of training or an error;
        then (for an eval) `prepare_for_eval` and hand the state over. All of it is timed."""
        if eval_result is not None:
            self.eval_results.append((int(eval_result["step"]), dict(eval_result["metrics"])))
        if self.compat is not None:
            self.compat.interval_started(submission_time_s, after_eval=eval_result is not None)
        status, loss_sum, loss_count = None, 0.0, 0
        try:
            while True:
                loss = self._step()
                if loss is not None:
                    if not math.isfinite(loss):
                        status = "diverged"
                        break
                    loss_sum, loss_count = loss_sum + loss, loss_count + 1
                if (until_step is not None and self.global_step >= until_step) or self.control.stop_requested:
                    break
        except TrainingComplete:
            status = "training_complete"
        except Exception:
            return self._report("failed", error=traceback.format_exc())
        # After TrainingComplete with no step since the last eval there is nothing new to evaluate.
        prepared = (
            status != "training_complete" or self.global_step != self.last_report_step or not self.reports
        )
        diagnostics = None
        if prepared:
            try:
                self._prepare_for_eval()
                self.fw.export_state(self.params, self.model_state, self.views)
                diagnostics = self._diagnostics()
            except RuleViolation as e:
                return self._report("failed", error=str(e))
            except Exception:
                return self._report("failed", error=traceback.format_exc())
        return self._report(
            status,
            prepared=prepared,
            train_loss_sum=loss_sum,
            train_loss_count=loss_count,
            diagnostics=diagnostics,
        )

    def _diagnostics(self) -> dict[str, float] | None:
        """The submission's own scalars for this eval (timed: it is the submission's code)."""
        if self.submission.diagnostics is None:
            return None
        return checked_diagnostics(self.submission.diagnostics(self.optimizer_state), self.fw.to_float)

    def _step(self) -> float | None:
        batch = self.submission.data_selection(
            workload=self.view,
            input_queue=self.input_queue,
            optimizer_state=self.optimizer_state,
            current_param_container=self.params,
            model_state=self.model_state,
            hyperparameters=self.hyperparameters,
            global_step=self.global_step,
            rng=self.fw.step_rng(self.update_seed, 2 * self.global_step),
        )
        self.optimizer_state, self.params, self.model_state = self.submission.update_params(
            workload=self.view,
            current_param_container=self.params,
            current_params_types=self.param_types,
            model_state=self.model_state,
            hyperparameters=self.hyperparameters,
            batch=batch,
            loss_type=self.workload.loss_type,
            optimizer_state=self.optimizer_state,
            eval_results=self.eval_results,
            global_step=self.global_step,
            rng=self.fw.step_rng(self.update_seed, 2 * self.global_step + 1),
        )
        self.fw.sync(self.params, self.optimizer_state)
        self.global_step += 1
        state = self.optimizer_state
        loss = state.get("last_loss") if isinstance(state, dict) else None
        return None if loss is None else self.fw.to_float(loss)

    def _prepare_for_eval(self) -> None:
        if self.submission.prepare_for_eval is None:
            return
        self.optimizer_state, self.params, self.model_state = self.submission.prepare_for_eval(
            workload=self.view,
            current_param_container=self.params,
            current_params_types=self.param_types,
            model_state=self.model_state,
            hyperparameters=self.hyperparameters,
            loss_type=self.workload.loss_type,
            optimizer_state=self.optimizer_state,
            eval_results=self.eval_results,
            global_step=self.global_step,
            rng=self.fw.step_rng(self.update_seed, self.global_step),
        )
        self.fw.sync(self.params, self.optimizer_state)

    def _report(self, status: str | None, **fields: Any) -> dict[str, Any]:
        self.reports += 1
        self.last_report_step = self.global_step
        if self.compat is not None:
            fields["submission_metrics"] = [[step, values] for step, values in self.compat.drain_metrics()]
        return {
            "type": "report",
            "step": self.global_step,
            "status": status,
            "compile_time_s": float(self.fw.compile_time_s()),
            **fields,
        }

    def serve(self) -> None:
        self.channel.send(
            {
                "type": "ready",
                "batch_size": self.batch_size,
                "isolation": self.isolation,
                "adaptations": list(self.compat.notices) if self.compat is not None else [],
            }
        )
        while True:
            message, _ = self.channel.recv()
            if message["type"] != "run":
                return
            self.channel.send(
                self.run(
                    message.get("until_step"),
                    message.get("eval_result"),
                    float(message.get("submission_time_s") or 0.0),
                )
            )


def _submission_workload(setup: dict[str, Any]) -> Any:
    """The workload as the worker holds it: no data, no target (the supervisor keeps both)."""
    from algoperf.plugins import workload_class

    cls = workload_class(setup["workload"], setup["framework"])
    workload = cls(size=setup["size"], data_dir=None)
    size = cls.sizes[setup["size"]]
    workload.sizes = {
        setup["size"]: dataclasses.replace(size, step_hint=int(setup["step_hint"]), target=float("nan"))
    }
    workload._num_train_examples = int(setup["num_train_examples"])
    return workload


def _load_submission(setup: dict[str, Any]) -> Any:
    from algoperf.plugins import SubmissionSource, load_submission

    folder = Path(setup["submission_dir"])
    entry = setup.get("submission_entry")
    source = SubmissionSource(
        setup["submission"],
        folder,
        algoperf_entry=folder / entry if entry else None,
        folder_name=setup.get("submission_folder_name"),
    )
    return load_submission(source, setup["framework"])


def _optional_float(value: Any) -> float | None:
    return None if value is None else float(value)


def main(argv: list[str]) -> int:
    channel = Channel(socket.socket(fileno=int(argv[0])))
    setup, fds = channel.recv(with_fds=3)
    setup["supervisor_pid"] = int(argv[1])
    try:
        worker = Worker(setup, fds, channel)
    except Exception:
        channel.send({"type": "report", "status": "failed", "step": 0, "error": traceback.format_exc()})
        return 1
    worker.serve()
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
