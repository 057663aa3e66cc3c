"""The submission's side of the benchmark: the types both sides share (parameter, loss and
forward-pass kinds, hyperparameters, batches) and the Submission interface.

A submission is either an *optimizer plugin* (`make_optimizer` + `search_space.yaml`), which
the framework backends turn into the full AlgoPerf-style API, or implements that full API
itself. The workload interface lives in `algoperf.workload`.
"""

from __future__ import annotations

import enum
import inspect
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import Any


class ParamType(enum.Enum):
    """What a parameter is, so an optimizer may treat kinds differently (e.g. no decay on norms)."""

    WEIGHT = "weight"  # dense / linear weight
    BIAS = "bias"
    CONV_WEIGHT = "conv_weight"
    NORM_SCALE = "norm_scale"
    NORM_BIAS = "norm_bias"
    EMBEDDING = "embedding"
    ATTENTION_Q = "attention_q"
    ATTENTION_K = "attention_k"
    ATTENTION_V = "attention_v"
    ATTENTION_QKV = "attention_qkv"  # fused q/k/v projection
    ATTENTION_OUT = "attention_out"


class LossType(enum.Enum):
    SOFTMAX_CROSS_ENTROPY = "softmax_cross_entropy"
    MEAN_ABSOLUTE_ERROR = "mean_absolute_error"
    MEAN_SQUARED_ERROR = "mean_squared_error"


class ForwardPassMode(enum.Enum):
    TRAIN = "train"
    EVAL = "eval"


class TrainingComplete(Exception):
    """Raised by a submission to end its trial early (status `training_complete`)."""


def until_step_hint(workload: Any, hyperparameters: Any) -> int:
    """A plugin's `training_steps` when its schedule ends at the workload's step hint: train
    that many steps, then the trial ends (a learning rate of zero would gain nothing more)."""
    return workload.step_hint


Batch = dict[str, Any]  # {"inputs": ..., "targets": ..., optional "weights": mask of valid examples}


class Hyperparameters(tuple):
    """A trial's hyperparameters: read as `hp.learning_rate` (AlgoPerf style) or `hp["learning_rate"]`.

    Read-only for real: the values are the items of a tuple (no attribute or dict to rebind).
    Reading a missing name raises AttributeError naming the ones that exist, so a typo in a
    submission fails loudly instead of silently using a default.
    """

    __slots__ = ()
    _METHODS = frozenset({"keys", "values", "items", "get"})

    def __new__(cls, values: Mapping[str, Any]):
        return super().__new__(cls, tuple((str(k), v) for k, v in dict(values).items()))

    def __getattribute__(self, name: str) -> Any:
        if name.startswith("_") or name in Hyperparameters._METHODS:
            return object.__getattribute__(self, name)
        for key, value in tuple.__iter__(self):
            if key == name:
                return value
        raise AttributeError(
            f"hyperparameter {name!r} is not in this trial's search space; "
            f"it has: {', '.join(sorted(self.keys())) or '(none)'}"
        )

    def __setattr__(self, name: str, value: Any) -> None:
        raise AttributeError("hyperparameters are read-only during a trial")

    def __getitem__(self, name: str) -> Any:  # type: ignore[override]
        for key, value in tuple.__iter__(self):
            if key == name:
                return value
        raise KeyError(name)

    def __iter__(self) -> Iterator[str]:  # type: ignore[override]
        return (key for key, _ in tuple.__iter__(self))

    def __contains__(self, name: object) -> bool:  # type: ignore[override]
        return any(key == name for key, _ in tuple.__iter__(self))

    def keys(self) -> list[str]:
        return list(iter(self))

    def values(self) -> list[Any]:
        return [value for _, value in tuple.__iter__(self)]

    def items(self) -> list[tuple[str, Any]]:
        return list(tuple.__iter__(self))

    def get(self, name: str, default: Any = None) -> Any:
        return self[name] if name in self else default

    def __repr__(self) -> str:
        return f"Hyperparameters({dict(self.items())!r})"


Mapping.register(Hyperparameters)


# ---- Submission interface ---------------------------------------------------------------------

# The full, AlgoPerf-compatible API. Names and parameter lists are what `algoperf check`
# validates; the runner calls them by keyword.
FULL_API: dict[str, list[str]] = {
    "get_batch_size": ["workload_name"],
    "init_optimizer_state": ["workload", "model_params", "model_state", "hyperparameters", "rng"],
    "update_params": [
        "workload",
        "current_param_container",
        "current_params_types",
        "model_state",
        "hyperparameters",
        "batch",
        "loss_type",
        "optimizer_state",
        "eval_results",
        "global_step",
        "rng",
    ],
    "data_selection": [
        "workload",
        "input_queue",
        "optimizer_state",
        "current_param_container",
        "model_state",
        "hyperparameters",
        "global_step",
        "rng",
    ],
}
OPTIONAL_FULL_API: dict[str, list[str]] = {
    "prepare_for_eval": [
        "workload",
        "current_param_container",
        "current_params_types",
        "model_state",
        "hyperparameters",
        "loss_type",
        "optimizer_state",
        "eval_results",
        "global_step",
        "rng",
    ],
}
# The optimizer-plugin API, per framework.
PLUGIN_API: dict[str, list[str]] = {
    "torch": ["params", "hparams", "workload"],
    "jax": ["hparams", "workload"],
}


@dataclass
class Submission:
    """A loaded submission in its full form: the runner only ever sees this."""

    name: str
    framework: str
    path: str  # the source file
    sha256: str
    get_batch_size: Any
    init_optimizer_state: Any
    update_params: Any
    data_selection: Any
    prepare_for_eval: Any | None
    is_plugin: bool
    compat: Any | None = None  # algoperf.compat.adapter.AlgoperfAdapter for an AlgoPerf submission


def signature_problem(fn: Any, expected: list[str]) -> str | None:
    """None if `fn` accepts the expected parameters by name, else what is wrong."""
    try:
        sig = inspect.signature(fn)
    except (TypeError, ValueError):
        return "is not a plain Python function"
    params = sig.parameters
    if any(p.kind is inspect.Parameter.VAR_KEYWORD for p in params.values()):
        return None
    missing = [name for name in expected if name not in params]
    extra = [
        name
        for name, p in params.items()
        if name not in expected
        and p.default is inspect.Parameter.empty
        and p.kind not in (inspect.Parameter.VAR_POSITIONAL,)
    ]
    if missing or extra:
        parts = []
        if missing:
            parts.append(f"lacks parameter(s) {', '.join(missing)}")
        if extra:
            parts.append(f"has unexpected required parameter(s) {', '.join(extra)}")
        return f"{' and '.join(parts)}; expected ({', '.join(expected)})"
    return None


def next_batch(
    workload,
    input_queue,
    optimizer_state,
    current_param_container,
    model_state,
    hyperparameters,
    global_step,
    rng,
):
    """The standard `data_selection`: the next batch of the training stream (plugins use it)."""
    return next(input_queue)


def hparam(hparams: Any, name: str, default: Any) -> Any:
    """A hyperparameter that a search space may or may not define (e.g. label_smoothing)."""
    if hasattr(hparams, "get"):
        return hparams.get(name, default)
    return getattr(hparams, name, default)
