"""An AlgoPerf submission in the harness's full submission form.

The harness calls the five functions as it calls its own submissions; this adapter translates
each call into what AlgoPerf gave the submission: AlgoPerf's workload interface, its
hyperparameters namedtuple (None under self-tuning), `eval_results` with AlgoPerf's metric
names, the optional `train_state`, and for pmap-era JAX code, parameters and state with a
leading device axis and batches split over the devices. Everything the adapter does to make a
submission run is said once, in `notices` (shown by `algoperf check`, kept in the record).
"""

from __future__ import annotations

import collections
import inspect
import time
from types import MappingProxyType, ModuleType
from typing import Any

from algoperf.compat.detect import AlgoperfSource
from algoperf.compat.workload import AlgoperfWorkload, TrialTimes, algoperf_loss_type


class AlgoperfAdapter:
    """Holds one AlgoPerf submission module and exposes the harness's full API."""

    def __init__(self, module: ModuleType, source: AlgoperfSource, notices: list[str]):
        self.module, self.source = module, source
        self.notices = list(notices)
        self.workload: AlgoperfWorkload | None = None
        self._pass_train_state = "train_state" in inspect.signature(module.update_params).parameters
        self._hyperparameters: Any = None
        self._hyperparameters_from: Any = None
        self._eval_results: list[tuple[int, dict[str, float]]] = []
        # (this process's clock at the interval's start, submission time then, at the last eval)
        self._clock = (time.perf_counter(), 0.0, 0.0)
        self._devices = _Devices(source) if source.framework == "jax" else None

    # ---- set-up by the worker -----------------------------------------------------------------
    def configure(self, view: Any, times: TrialTimes) -> None:
        self.workload = AlgoperfWorkload(view, self.source.framework, times)

    def interval_started(self, submission_time_s: float) -> None:
        """The supervisor's submission time when it let the worker go (for `train_state`)."""
        last_eval = self._clock[1] if self._eval_results else 0.0
        self._clock = (time.perf_counter(), float(submission_time_s), last_eval)

    def note(self, message: str) -> None:
        if message not in self.notices:
            self.notices.append(message)
            print(f"[algoperf compat] {message}", flush=True)

    # ---- the five functions -------------------------------------------------------------------
    def get_batch_size(self, workload_name: str) -> int | None:
        names = [workload_name]
        if self.workload is not None and self.workload.name != workload_name:
            names.append(self.workload.name)  # a variant: AlgoPerf submissions may know the base
        errors = []
        for name in names:
            try:
                return int(self.module.get_batch_size(name))
            except Exception as e:  # an AlgoPerf submission raises for workloads it does not know
                errors.append(f"get_batch_size({name!r}) raised {type(e).__name__}: {e}")
        default = self.workload.default_batch_size if self.workload is not None else "default"
        self.note(
            f"{errors[0]} (AlgoPerf has no such workload); the trial uses the workload's default "
            f"batch size, {default}"
        )
        return None

    def init_optimizer_state(self, workload, model_params, model_state, hyperparameters, rng):
        ours = self._workload()
        ours.bind_params(model_params)
        params, state = model_params, model_state
        if self._devices is not None and self.source.pmap:
            params, state = self._devices.replicate(params), self._devices.replicate(state)
        optimizer_state = self.module.init_optimizer_state(
            ours, params, state, self._hparams(hyperparameters), rng
        )
        if self._devices is not None and not self.source.pmap:
            optimizer_state = self._devices.commit(optimizer_state)
        return optimizer_state

    def data_selection(
        self,
        workload,
        input_queue,
        optimizer_state,
        current_param_container,
        model_state,
        hyperparameters,
        global_step,
        rng,
    ):
        queue = self._devices.split_queue(input_queue) if self._devices and self.source.pmap else input_queue
        params, state = self._to_submission(current_param_container, model_state)
        return self.module.data_selection(
            self._workload(),
            queue,
            optimizer_state,
            params,
            state,
            self._hparams(hyperparameters),
            global_step,
            rng,
        )

    def update_params(
        self,
        workload,
        current_param_container,
        current_params_types,
        model_state,
        hyperparameters,
        batch,
        loss_type,
        optimizer_state,
        eval_results,
        global_step,
        rng,
    ):
        ours = self._workload()
        params, state = self._to_submission(current_param_container, model_state)
        extra = {"train_state": self._train_state()} if self._pass_train_state else {}
        optimizer_state, params, state = self.module.update_params(
            workload=ours,
            current_param_container=params,
            current_params_types=ours.model_params_types,
            model_state=state,
            hyperparameters=self._hparams(hyperparameters),
            batch=batch,
            loss_type=algoperf_loss_type(loss_type),
            optimizer_state=optimizer_state,
            eval_results=self._algoperf_eval_results(eval_results),
            global_step=global_step,
            rng=rng,
            **extra,
        )
        return optimizer_state, *self._from_submission(params, state)

    def prepare_for_eval(
        self,
        workload,
        current_param_container,
        current_params_types,
        model_state,
        hyperparameters,
        loss_type,
        optimizer_state,
        eval_results,
        global_step,
        rng,
    ):
        ours = self._workload()
        params, state = self._to_submission(current_param_container, model_state)
        optimizer_state, params, state = self.module.prepare_for_eval(
            workload=ours,
            current_param_container=params,
            current_params_types=ours.model_params_types,
            model_state=state,
            hyperparameters=self._hparams(hyperparameters),
            loss_type=algoperf_loss_type(loss_type),
            optimizer_state=optimizer_state,
            eval_results=self._algoperf_eval_results(eval_results),
            global_step=global_step,
            rng=rng,
        )
        return optimizer_state, *self._from_submission(params, state)

    def drain_metrics(self) -> list[tuple[int, dict[str, float]]]:
        return self.workload.metrics_logger.drain() if self.workload is not None else []

    # ---- translations ---------------------------------------------------------------------------
    def _workload(self) -> AlgoperfWorkload:
        if self.workload is None:
            raise RuntimeError("the AlgoPerf adapter was not configured with the trial's workload")
        return self.workload

    def _hparams(self, hyperparameters: Any) -> Any:
        """AlgoPerf's hyperparameters: a namedtuple, or None when there is no search space
        (self-tuning). Built once per trial."""
        if hyperparameters is not self._hyperparameters_from:
            values = dict(hyperparameters.items()) if hyperparameters is not None else {}
            self._hyperparameters = (
                collections.namedtuple("Hyperparameters", list(values))(**values) if values else None
            )
            self._hyperparameters_from = hyperparameters
        return self._hyperparameters

    def _algoperf_eval_results(self, eval_results: list) -> list:
        """AlgoPerf names evaluation metrics by split: `validation/accuracy`, `validation/loss`.
        The harness shows a submission its validation metrics only."""
        while len(self._eval_results) < len(eval_results):
            step, metrics = eval_results[len(self._eval_results)]
            self._eval_results.append((step, {f"validation/{k}": v for k, v in metrics.items()}))
            self._clock = (self._clock[0], self._clock[1], self._clock[1])
        return self._eval_results

    def _train_state(self) -> MappingProxyType:
        """AlgoPerf v0.6's read-only `train_state`. The submission time is the supervisor's, as of
        the start of this interval, plus this process's own clock since then: an estimate (the
        counted clock stays with the supervisor). The target is never shown to a submission, so
        the goal flags stay False while it trains."""
        started, base, last_eval = self._clock
        return MappingProxyType(
            {
                "validation_goal_reached": False,
                "test_goal_reached": False,
                "is_time_remaining": True,
                "training_complete": False,
                "accumulated_submission_time": base + (time.perf_counter() - started),
                "accumulated_eval_time": 0.0,
                "accumulated_logging_time": 0.0,
                "last_eval_time": last_eval,
                "last_step_end_time": None,
            }
        )

    def _to_submission(self, params: Any, state: Any) -> tuple[Any, Any]:
        if self._devices is not None and self.source.pmap:
            return self._devices.replicated(params), self._devices.replicated(state)
        return params, state

    def _from_submission(self, params: Any, state: Any) -> tuple[Any, Any]:
        if self._devices is not None and self.source.pmap:
            return self._devices.unreplicated(params), self._devices.unreplicated(state)
        return params, state


class _Devices:
    """pmap-era layout on this process's devices (one on a CPU trial): a leading device axis
    on parameters, model state and batches. The replicated copy the submission returned is
    kept, so a step costs one compiled un-replication, not a copy in each direction."""

    def __init__(self, source: AlgoperfSource):
        import jax

        self.jax = jax
        self.count = jax.local_device_count()
        count = self.count
        self._replicate = jax.jit(lambda tree: jax.tree.map(lambda x: jax.numpy.stack([x] * count), tree))
        self._unreplicate = jax.jit(lambda tree: jax.tree.map(lambda x: x[0], tree))
        self._split = jax.jit(
            lambda tree: jax.tree.map(lambda x: x.reshape(count, x.shape[0] // count, *x.shape[1:]), tree)
        )
        self._pairs: dict[int, tuple[Any, Any]] = {}  # id(unreplicated) -> (unreplicated, replicated)
        self._queue: tuple[Any, Any] | None = None

    def replicate(self, tree: Any) -> Any:
        return self._replicate(tree) if self.jax.tree.leaves(tree) else tree

    def replicated(self, tree: Any) -> Any:
        pair = self._pairs.get(id(tree))
        if pair is not None and pair[0] is tree:
            return pair[1]
        return self.replicate(tree)

    def unreplicated(self, tree: Any) -> Any:
        if not self.jax.tree.leaves(tree):
            return tree
        plain = self._unreplicate(tree)
        self._pairs = {id(plain): (plain, tree)}
        return plain

    def commit(self, tree: Any) -> Any:
        """Arrays of a jit-style optimizer state placed on the device, as the train step's
        outputs will be: otherwise the step compiles once for the uncommitted initial state
        and again for its own outputs."""
        device = self.jax.devices()[0]
        return self.jax.tree.map(
            lambda x: self.jax.device_put(x, device) if isinstance(x, self.jax.Array) else x, tree
        )

    def split_queue(self, queue: Any) -> Any:
        """The input queue with each batch's examples split over the devices (AlgoPerf's
        pmap-era input pipeline yields [devices, per-device batch, ...])."""
        if self._queue is None or self._queue[0] is not queue:
            self._queue = (queue, (self._split(batch) for batch in queue))
        return self._queue[1]
