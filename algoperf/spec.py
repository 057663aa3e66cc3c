"""The two interfaces of the benchmark: the Workload (fixed) and the Submission (the user's).

A workload is split in two layers: a framework-agnostic base (data, targets, metric, sizes)
and one subclass per framework (model, loss, evaluation). A submission is either an
*optimizer plugin* (`make_optimizer` + `search_space.yaml`), which the framework adapters
turn into the full AlgoPerf-style API, or implements that full API itself.
"""

from __future__ import annotations

import abc
import enum
import inspect
import os
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np


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


# Compute precisions a workload size may declare in its options ("precision").
PRECISIONS = ("float32", "bfloat16")


@dataclass(frozen=True)
class WorkloadSize:
    """One size of a workload: model/data dimensions plus the target and step hint for that size.

    Targets and step hints belong to a size (a bigger model reaches a better metric); time
    budgets belong to hardware profiles (conf/hardware/*.yaml).
    """

    target: float
    step_hint: int
    options: Mapping[str, Any] = field(default_factory=dict)


@dataclass
class DataSplits:
    """Numpy arrays of one workload's splits. Only `train` is ever handed to a submission."""

    train: dict[str, np.ndarray]
    validation: dict[str, np.ndarray]
    test: dict[str, np.ndarray]


class Workload(abc.ABC):
    """Framework-agnostic part of a workload: data, metric, targets, sizes.

    Subclasses (one per framework) add the model, the loss and the evaluation. Variants are
    subclasses that change one thing and set their own `variant` name and `sizes` targets.
    """

    name: str  # base workload name, e.g. "fashion_mnist"
    variant: str = "base"
    framework: str  # "torch" | "jax", set by the framework subclass
    metric_name: str  # e.g. "accuracy"
    metric_higher_is_better: bool
    loss_type: LossType
    default_batch_size: int
    eval_batch_size: int = 1024
    sizes: Mapping[str, WorkloadSize]  # e.g. {"small": ..., "large": ...}

    def __init__(self, size: str = "small", data_dir: str | None = None):
        if size not in self.sizes:
            from algoperf.errors import AlgoperfError, did_you_mean

            raise AlgoperfError(
                f"workload {self.full_name!r} has no size {size!r}." + did_you_mean(size, self.sizes)
            )
        self.size = size
        self.data_dir = data_dir
        self._param_types: dict[str, ParamType] | None = None
        self._param_shapes: dict[str, tuple[int, ...]] | None = None
        self._num_train_examples: int | None = None

    # ---- identity -------------------------------------------------------------------------
    @property
    def full_name(self) -> str:
        """Registry name: the base name, or `<name>_<variant>` for a variant."""
        return self.name if self.variant == "base" else f"{self.name}_{self.variant}"

    @property
    def options(self) -> Mapping[str, Any]:
        return self.sizes[self.size].options

    @property
    def precision(self) -> str:
        """Compute precision of this size: "float32", or "bfloat16" (mixed precision: bf16
        matmuls and convolutions, float32 parameters, optimizer state, loss and outputs)."""
        precision = self.options.get("precision", "float32")
        if precision not in PRECISIONS:
            raise ValueError(f"{self.full_name}: precision {precision!r} is not one of {PRECISIONS}")
        return precision

    @property
    def target_value(self) -> float:
        return self.sizes[self.size].target

    @property
    def step_hint(self) -> int:
        """Steps the target-setting run needed; schedules (e.g. cosine decay) are sized by it."""
        return self.sizes[self.size].step_hint

    def has_reached_target(self, metric_value: float) -> bool:
        if not np.isfinite(metric_value):
            return False
        if self.metric_higher_is_better:
            return metric_value >= self.target_value
        return metric_value <= self.target_value

    # ---- parameters (filled by the framework subclass at init) ----------------------------
    @property
    def param_types(self) -> dict[str, ParamType]:
        """Parameter name -> ParamType, in the model's parameter order (torch: named_parameters)."""
        if self._param_types is None:
            raise RuntimeError("param_types is known once init_model_fn has run")
        return self._param_types

    @property
    def param_shapes(self) -> dict[str, tuple[int, ...]]:
        if self._param_shapes is None:
            raise RuntimeError("param_shapes is known once init_model_fn has run")
        return self._param_shapes

    @property
    def num_train_examples(self) -> int:
        if self._num_train_examples is None:
            raise RuntimeError("num_train_examples is known once the data is loaded")
        return self._num_train_examples

    # ---- data: plain numpy, shared by every framework -------------------------------------
    @classmethod
    def data_locations(cls, data_dir: str | None = None) -> list[Path]:
        """Where this workload's data may live on disk. A trial's worker is denied all of them:
        it receives the training split from the supervisor. Subclasses add their own places."""
        paths = [Path(data_dir)] if data_dir else []
        paths += [Path(os.environ[v]) for v in ("ALGOPERF_DATA", "ALGOPERF_CACHE") if os.environ.get(v)]
        return [*paths, Path.home() / ".cache" / "algoperf"]

    @abc.abstractmethod
    def load_splits(self) -> DataSplits:
        """Read the dataset and split it deterministically (the split never depends on a trial seed)."""

    @abc.abstractmethod
    def train_batches(self, train: dict[str, Any], batch_size: int, seed: int) -> Iterator[Batch]:
        """Endless stream of training batches, deterministic given `seed`.

        `train` holds the train split as framework arrays already on the device, so slicing
        a batch never waits for host->device copies.
        """

    def eval_batches(self, split: dict[str, Any]) -> Iterator[Batch]:
        """The whole split in order, in batches of `eval_batch_size` (last batch may be smaller)."""
        n = len(next(iter(split.values())))
        for start in range(0, n, self.eval_batch_size):
            yield {k: v[start : start + self.eval_batch_size] for k, v in split.items()}

    # ---- framework part ---------------------------------------------------------------------
    @abc.abstractmethod
    def to_device(self, arrays: dict[str, np.ndarray]) -> dict[str, Any]:
        """Move a split to the device as framework arrays."""

    @abc.abstractmethod
    def init_model_fn(self, rng: int) -> tuple[Any, Any]:
        """Build the model. Returns (params, model_state); torch: (nn.Module, None)."""

    @abc.abstractmethod
    def model_fn(
        self,
        params: Any,
        batch: Batch,
        model_state: Any,
        mode: ForwardPassMode,
        rng: Any,
        update_batch_norm: bool,
    ) -> tuple[Any, Any]:
        """Forward pass. Returns (outputs, new_model_state)."""

    @abc.abstractmethod
    def loss_fn(
        self,
        targets: Any,
        outputs: Any,
        mask: Any | None = None,
        label_smoothing: float = 0.0,
    ) -> dict[str, Any]:
        """Returns {"summed": summed loss, "n_valid_examples": count, "per_example": losses}."""

    @abc.abstractmethod
    def eval_metrics(self, params: Any, model_state: Any, split: dict[str, Any]) -> dict[str, float]:
        """Evaluate on one split (device arrays). Returns {"loss": ..., self.metric_name: ...}."""


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
