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
        # For `train_state`: this process's clock when the supervisor last let it go, the
        # supervisor's submission time then, and that time at the last evaluation.
        self._interval_started_at = time.perf_counter()
        self._submission_time_s = 0.0
        self._last_eval_time_s = 0.0
        self._devices = _Devices(source) if source.framework == "jax" else None

    # ---- set-up by the worker -----------------------------------------------------------------
    def configure(self, view: Any, times: TrialTimes) -> None:
        self.workload = AlgoperfWorkload(view, self.source.framework, times)

    def interval_started(self, submission_time_s: float, after_eval: bool = False) -> None:
        """The supervisor's submission time when it let the worker go, and whether it had just
        evaluated (then at that time), for `train_state`."""
        self._interval_started_at = time.perf_counter()
        self._submission_time_s = float(submission_time_s)
        if after_eval:
            self._last_eval_time_s = self._submission_time_s

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
        params, state = self._to_submission(model_params, model_state)
        optimizer_state = self.module.init_optimizer_state(
            ours, params, state, self._hparams(hyperparameters), rng
        )
        if self._devices is not None:
            placement = self._devices.as_pmap_output if self.source.pmap else self._devices.place
            optimizer_state = placement(optimizer_state)
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
        if self.workload is None:
            return []
        logger = self.workload.metrics_logger
        if logger.dropped:
            self.note(
                f"workload.metrics_logger keeps {logger.MAX_PENDING} entries between evaluations; "
                f"{logger.dropped} more were dropped (log less often)"
            )
        return logger.drain()

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
            self._apply_dropout_hyperparameters(values)
        return self._hyperparameters

    def _apply_dropout_hyperparameters(self, values: dict[str, Any]) -> None:
        """AlgoPerf's runner built the model with `dropout_rate` and `aux_dropout_rate` from the
        hyperparameters (v0.5); v0.6 submissions pass `dropout_rate` to model_fn themselves."""
        rate = values.get("dropout_rate")
        if isinstance(rate, int | float) and not isinstance(rate, bool):
            self._workload().use_dropout_rate(rate)
            if rate:
                self.note(
                    f"dropout_rate={rate} applies to every forward pass that passes no rate, as "
                    "AlgoPerf's runner applied it when it built the model"
                )
        aux = values.get("aux_dropout_rate")
        if aux:
            self.note(
                f"aux_dropout_rate={aux} is not used: it drives extra dropout layers of AlgoPerf's "
                "own models, which the harness's models do not have"
            )

    def _algoperf_eval_results(self, eval_results: list) -> list:
        """AlgoPerf names evaluation metrics by split: `validation/accuracy`, `validation/loss`.
        The harness shows a submission its validation metrics only."""
        while len(self._eval_results) < len(eval_results):
            step, metrics = eval_results[len(self._eval_results)]
            self._eval_results.append((step, {f"validation/{k}": v for k, v in metrics.items()}))
        return self._eval_results

    def _train_state(self) -> MappingProxyType:
        """AlgoPerf v0.6's read-only `train_state`. The submission time is the supervisor's, as of
        the start of this interval, plus this process's own clock since then: an estimate (the
        counted clock stays with the supervisor). The target is never shown to a submission, so
        the goal flags stay False while it trains."""
        elapsed_s = time.perf_counter() - self._interval_started_at
        return MappingProxyType(
            {
                "validation_goal_reached": False,
                "test_goal_reached": False,
                "is_time_remaining": True,
                "training_complete": False,
                "accumulated_submission_time": self._submission_time_s + elapsed_s,
                "accumulated_eval_time": 0.0,
                "accumulated_logging_time": 0.0,
                "last_eval_time": self._last_eval_time_s,
                "last_step_end_time": None,
            }
        )

    def _to_submission(self, params: Any, state: Any) -> tuple[Any, Any]:
        if self._devices is None:
            return params, state
        if self.source.pmap:
            return self._devices.replicated(params), self._devices.replicated(state)
        return self._devices.placed(params), self._devices.placed(state)

    def _from_submission(self, params: Any, state: Any) -> tuple[Any, Any]:
        if self._devices is None:
            return params, state
        self._devices.forget()  # what the submission returns now replaces what it had
        if self.source.pmap:
            return self._devices.unreplicated(params), self._devices.unreplicated(state)
        return self._devices.returned(params), self._devices.returned(state)


class _Devices:
    """pmap-era layout on this process's devices (one on a CPU trial): a leading device axis
    on parameters, model state and batches. The replicated copy the submission returned is
    kept, so a step costs one compiled un-replication, not a copy in each direction."""

    def __init__(self, source: AlgoperfSource):
        import jax

        self.jax = jax
        self.count = jax.local_device_count()
        self.axis_name = source.pmap_axis_name
        count = self.count
        self._unreplicate = jax.jit(lambda tree: jax.tree.map(lambda x: x[0], tree))
        self._split = jax.jit(
            lambda tree: jax.tree.map(lambda x: x.reshape(count, x.shape[0] // count, *x.shape[1:]), tree)
        )
        self._pairs: dict[int, tuple[Any, Any]] = {}  # id(unreplicated) -> (unreplicated, replicated)
        self._pmap_sharding: Any = None
        self._queue: tuple[Any, Any] | None = None

    def replicate(self, tree: Any) -> Any:
        """A copy per device, placed as pmap places its own outputs."""
        from flax import jax_utils

        return self.as_pmap_output(jax_utils.replicate(tree)) if self.jax.tree.leaves(tree) else tree

    def as_pmap_output(self, tree: Any) -> Any:
        """Device-axis arrays placed as pmap places its outputs. On current JAX, pmap's
        outputs live on a mesh named after its `axis_name` and flax's `jax_utils.replicate`
        on another, so a step first given replicated inputs compiles again for its own
        outputs; placed like the outputs from the start, it compiles once."""
        if self._pmap_sharding is None:
            jnp = self.jax.numpy
            identity = self.jax.pmap(lambda x: x, axis_name=self.axis_name)
            probe = identity(jnp.zeros((self.count, 1), jnp.float32))
            self._pmap_sharding = probe.sharding
        sharding = self._pmap_sharding
        return self.jax.tree.map(
            lambda x: (
                self.jax.device_put(x, sharding)
                if isinstance(x, self.jax.Array) and x.ndim >= 1 and x.shape[0] == self.count
                else x
            ),
            tree,
        )

    def replicated(self, tree: Any) -> Any:
        pair = self._pairs.get(id(tree))
        if pair is not None and pair[0] is tree:
            return pair[1]
        return self.replicate(tree)

    def unreplicated(self, tree: Any) -> Any:
        if not self.jax.tree.leaves(tree):
            return tree
        plain = self._unreplicate(tree)
        self._pairs[id(plain)] = (plain, tree)
        return plain

    def place(self, tree: Any) -> Any:
        """Arrays placed as AlgoPerf v0.6 places them, replicated over a one-axis mesh of the
        devices (`jax_sharding_utils.get_replicate_sharding()`), which is also how a jit-style
        train step's outputs come back. An initial state placed otherwise (an optimizer state
        built off-device, parameters on one device) makes the step compile twice: once for
        the first call's placement, once for its own outputs'."""
        from algoperf.compat.api.jax_sharding_utils import get_replicate_sharding

        sharding = get_replicate_sharding()
        return self.jax.tree.map(
            lambda x: self.jax.device_put(x, sharding) if isinstance(x, self.jax.Array) else x, tree
        )

    def placed(self, tree: Any) -> Any:
        """`place(tree)`, remembered: the parameters the worker hands back are the ones the
        submission returned (already placed), or ones placed before."""
        pair = self._pairs.get(id(tree))
        if pair is not None and pair[0] is tree:
            return pair[1]
        placed = self.place(tree)
        self._pairs[id(tree)] = (tree, placed)
        return placed

    def forget(self) -> None:
        self._pairs = {}

    def returned(self, tree: Any) -> Any:
        self._pairs[id(tree)] = (tree, tree)
        return tree

    def split_queue(self, queue: Any) -> Any:
        """The input queue with each batch's examples split over the devices (AlgoPerf's
        pmap-era input pipeline yields [devices, per-device batch, ...])."""
        if self._queue is None or self._queue[0] is not queue:
            self._queue = (queue, (self._split(batch) for batch in queue))
        return self._queue[1]
