"""The framework backend interface: what the runner, the supervisor, the worker and `check` ask
of a framework. `algoperf.frameworks.load_backend("torch" | "jax")` returns one.

A backend is the only place the harness imports torch or jax. Each one is a package whose
files each do one thing (see docs/architecture.md, "Framework backends"):

    runtime.py    threads, seeds, device sync, per-step rngs, scalar conversion, compile time
    workload.py   the framework base of every workload (array namespace, gather, forward pass)
    plugin.py     the optimizer-plugin adapter (`make_optimizer` -> the full submission API)
    state.py      the model's state between the worker and the supervisor (shared memory)
    schedules.py  learning-rate schedules submissions import
"""

from __future__ import annotations

import abc
import os
from collections.abc import Callable
from dataclasses import dataclass
from types import ModuleType
from typing import Any

from algoperf.spec import STEP_KINDS, TrainingComplete, next_batch


def default_threads() -> int:
    """Threads a trial uses when neither the run nor the hardware profile says: $ALGOPERF_THREADS
    or every core."""
    return int(os.environ.get("ALGOPERF_THREADS", os.cpu_count() or 1))


class Backend(abc.ABC):
    """One framework, as the harness drives it."""

    name: str  # "torch" | "jax"
    workload_base: type  # the framework base every workload of this framework subclasses

    def default_threads(self) -> int:
        return default_threads()

    # ---- the process ------------------------------------------------------------------------
    @abc.abstractmethod
    def set_threads(self, num_threads: int) -> None:
        """Give this process its share of the cores (before the first computation)."""

    @abc.abstractmethod
    def seed_everything(self, seed: int) -> None:
        """Seed the framework's and numpy's global generators."""

    @abc.abstractmethod
    def sync(self, *trees: Any) -> None:
        """Wait for queued device work before the clock is read."""

    @abc.abstractmethod
    def step_rng(self, seed: int, step: int) -> Any:
        """The rng handed to a submission's call at `step` (-1: init)."""

    @abc.abstractmethod
    def to_float(self, value: Any) -> float:
        """A device scalar as a Python float."""

    @abc.abstractmethod
    def is_finite(self, value: Any) -> bool:
        """True when every element of `value` is finite."""

    @abc.abstractmethod
    def compile_time_s(self) -> float:
        """Seconds spent compiling so far in this process (0 when nothing compiles)."""

    # ---- submissions ------------------------------------------------------------------------
    @abc.abstractmethod
    def plugin_to_full(self, module: ModuleType) -> dict[str, Any]:
        """An optimizer plugin's `make_optimizer` as the full submission API's functions."""

    # ---- the model's state between the worker and the supervisor (algoperf.ipc) ----------------
    @abc.abstractmethod
    def state_layout(self, params: Any, model_state: Any) -> list[tuple[str, str, tuple[int, ...], int]]:
        """(name, dtype, shape, bytes) of every array the supervisor needs to evaluate the model."""

    @abc.abstractmethod
    def state_views(self, block: Any, layout: list) -> dict[str, Any]:
        """Arrays over a shared block (no copy), one per layout entry."""

    @abc.abstractmethod
    def bind_state(self, params: Any, model_state: Any, views: dict[str, Any]) -> None:
        """Worker: let the model's arrays live in the shared block where the framework allows."""

    @abc.abstractmethod
    def export_state(self, params: Any, model_state: Any, views: dict[str, Any]) -> None:
        """Worker, at the end of a timed interval: make the shared block hold the model's state."""

    @abc.abstractmethod
    def import_state(self, params: Any, model_state: Any, views: dict[str, Any]) -> tuple[Any, Any]:
        """Supervisor: the worker's state copied into the supervisor's own model."""


class ModuleBackend(Backend):
    """A backend assembled from a framework package's modules: `runtime` (the process
    functions of the interface, by the same names) and `state` (the hand-over functions)."""

    def __init__(
        self, name: str, workload_base: type, runtime: ModuleType, state: ModuleType, plugin_to_full: Any
    ):
        self.name, self.workload_base = name, workload_base
        self._runtime, self._state, self._plugin_to_full = runtime, state, plugin_to_full

    def set_threads(self, num_threads: int) -> None:
        self._runtime.set_threads(num_threads)

    def seed_everything(self, seed: int) -> None:
        self._runtime.seed_everything(seed)

    def sync(self, *trees: Any) -> None:
        self._runtime.sync(*trees)

    def step_rng(self, seed: int, step: int) -> Any:
        return self._runtime.step_rng(seed, step)

    def to_float(self, value: Any) -> float:
        return self._runtime.to_float(value)

    def is_finite(self, value: Any) -> bool:
        return self._runtime.is_finite(value)

    def compile_time_s(self) -> float:
        return self._runtime.compile_time_s()

    def plugin_to_full(self, module: ModuleType) -> dict[str, Any]:
        return self._plugin_to_full(module)

    def state_layout(self, params: Any, model_state: Any) -> list[tuple[str, str, tuple[int, ...], int]]:
        return self._state.state_layout(params, model_state)

    def state_views(self, block: Any, layout: list) -> dict[str, Any]:
        return self._state.state_views(block, layout)

    def bind_state(self, params: Any, model_state: Any, views: dict[str, Any]) -> None:
        self._state.bind_state(params, model_state, views)

    def export_state(self, params: Any, model_state: Any, views: dict[str, Any]) -> None:
        self._state.export_state(params, model_state, views)

    def import_state(self, params: Any, model_state: Any, views: dict[str, Any]) -> tuple[Any, Any]:
        return self._state.import_state(params, model_state, views)


@dataclass(frozen=True)
class UpdateCall:
    """One call of the AlgoPerf `update_params` as a plugin's standard step reads it."""

    workload: Any
    params: Any  # current_param_container
    model_state: Any
    hyperparameters: Any
    batch: Any
    optimizer_state: Any
    rng: Any


def step_kind_of(module: ModuleType) -> str:
    """A plugin's `step_kind` (algoperf.spec.STEP_KINDS), "gradient" when it sets none."""
    kind = getattr(module, "step_kind", "gradient")
    if kind not in STEP_KINDS:
        raise ValueError(f"step_kind = {kind!r} is not one of {', '.join(map(repr, STEP_KINDS))}")
    return kind


def full_api(
    module: ModuleType,
    init_optimizer_state: Any,
    standard_step: Callable[[UpdateCall], tuple[Any, Any, Any]],
    diagnostics_input: str,
) -> dict[str, Any]:
    """The full submission API of a plugin, given the backend's `init_optimizer_state` and its
    standard step (an UpdateCall -> (optimizer_state, params, model_state)): batches come from
    the standard stream, and the plugin's optional `prepare_for_eval` and `get_batch_size`
    are kept.

    A plugin's `diagnostics(x)` receives `optimizer_state[diagnostics_input]`: what its
    make_optimizer built (torch: the optimizer(s); JAX: the optax state).

    A plugin that defines `training_steps(workload, hparams)` declares its training length:
    after that many steps the trial ends (status `training_complete`, or `reached` if the final
    evaluation meets the target) instead of running on to the time budget.
    """
    declared_length = getattr(module, "training_steps", None)
    length: dict[str, int] = {}  # the trial's training length, known once the optimizer is made

    def init_with_length(workload, model_params, model_state, hyperparameters, rng):
        if declared_length is not None:
            length["steps"] = checked_training_steps(declared_length(workload, hyperparameters))
        return init_optimizer_state(workload, model_params, model_state, hyperparameters, rng)

    def update_params(  # the AlgoPerf API's signature; the harness calls it by keyword
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
        if global_step >= length.get("steps", global_step + 1):
            raise TrainingComplete
        call = UpdateCall(
            workload, current_param_container, model_state, hyperparameters, batch, optimizer_state, rng
        )
        return standard_step(call)

    functions = {
        "init_optimizer_state": init_with_length,
        "update_params": update_params,
        "data_selection": next_batch,
        "prepare_for_eval": getattr(module, "prepare_for_eval", None),
    }
    if hasattr(module, "get_batch_size"):
        functions["get_batch_size"] = module.get_batch_size
    if hasattr(module, "diagnostics"):
        functions["diagnostics"] = lambda state: module.diagnostics(state[diagnostics_input])
    return functions


def checked_training_steps(steps: Any) -> int:
    """A plugin's declared training length, refused unless it is a whole number of steps >= 1."""
    if not isinstance(steps, bool):
        try:
            if int(steps) == steps and int(steps) >= 1:  # numpy and jax integers count too
                return int(steps)
        except (TypeError, ValueError):
            pass
    raise ValueError(
        f"training_steps(workload, hparams) returned {steps!r}; it must return a whole number of "
        "steps >= 1 (e.g. `return workload.step_hint`), or leave training_steps out to train "
        "until the time budget."
    )
