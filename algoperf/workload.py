"""The workload interface, and every piece of workload logic that does not depend on a framework.

A workload is three layers (docs/architecture.md, "A workload"):

- this base: sizes, targets, the metric, data locations, the **train batch indices** (numpy,
  from the seed, so both frameworks draw the same examples by construction), the loss, the
  parameter typing rule and the evaluation loop;
- one framework base per framework (`algoperf.frameworks.torch.TorchWorkload`,
  `algoperf.frameworks.jax.JaxWorkload`): its array namespace, cross-entropy, the gather of a
  batch from device arrays, the forward pass, what kind of module owns a parameter;
- the workload's own folder: `workload.py` (data, sizes, targets, per-batch metric sums written
  once with the framework's array namespace `self.xp`) and one model per framework.

The framework base's array namespace `xp` is `torch` or `jax.numpy`; the code here uses only
what both spell the same way (`xp.abs`, `xp.square`, `xp.asarray(x, dtype=xp.float32)`,
`xp.broadcast_to`, `.sum()`, `.shape`, slicing, comparisons).
"""

from __future__ import annotations

import abc
import enum
import fnmatch
import math
import os
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from algoperf.spec import Batch, ForwardPassMode, LossType, ParamInfo, ParamRole, ParamType, param_layout

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


class ModuleKind(enum.Enum):
    """What kind of layer owns a parameter, as a framework base reports it for typing."""

    EMBEDDING = "embedding"
    NORM = "norm"
    CONV = "conv"
    OTHER = "other"  # dense layers and anything else


def module_kind(module_type: type, kinds: tuple[tuple[Any, ModuleKind], ...]) -> ModuleKind:
    """The kind of a layer class, from a framework's table of (layer classes, kind)."""
    for classes, kind in kinds:
        if issubclass(module_type, classes):
            return kind
    return ModuleKind.OTHER


def num_rows(arrays: Mapping[str, Any]) -> int:
    """The length of the first axis of a split's arrays (they all share it)."""
    return int(next(iter(arrays.values())).shape[0])


def epoch_permutations(num_examples: int, batch_size: int, seed: int) -> Iterator[np.ndarray]:
    """Endless (batch_size,) row indices: epochs of a seeded permutation, the ragged end of
    each epoch dropped. Deterministic given `seed`, the same whatever the framework."""
    rng = np.random.default_rng(seed)
    while True:
        order = rng.permutation(num_examples)
        for start in range(0, num_examples - batch_size + 1, batch_size):
            yield order[start : start + batch_size]


class Workload(abc.ABC):
    """Framework-agnostic part of a workload: data, metric, targets, sizes, loss, batches,
    parameter typing and evaluation.

    Subclasses (one per framework, through a framework base) add the model. Variants are
    subclasses that change one thing and set their own `variant` name and `sizes` targets.
    """

    name: str  # base workload name, e.g. "fashion_mnist"
    variant: str = "base"
    framework: str  # "torch" | "jax", set by the framework base
    metric_name: str  # e.g. "accuracy"
    metric_higher_is_better: bool
    loss_type: LossType
    default_batch_size: int
    eval_batch_size: int = 1024
    sizes: Mapping[str, WorkloadSize]  # e.g. {"small": ..., "large": ...}
    xp: Any  # the framework's array namespace (torch or jax.numpy), set by the framework base
    # Whether the model has dropout layers that honour `model_fn(..., dropout_rate=...)`; a
    # workload without them refuses a nonzero rate. `default_dropout_rate` is what None means.
    supports_dropout: bool = False
    default_dropout_rate: float = 0.0
    # The layers at the ends of the network (fnmatch patterns of module names, e.g. "head" or
    # "layers.*.edge_encoder"): their parameters get ParamRole.INPUT / OUTPUT, the rest HIDDEN.
    input_layers: tuple[str, ...] = ()
    output_layers: tuple[str, ...] = ()

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
        self._param_info: dict[str, ParamInfo] | None = None
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

    # ---- parameters (filled by the framework base at init) --------------------------------
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
    def param_info(self) -> dict[str, ParamInfo]:
        """Parameter name -> ParamInfo (type, role, shape, fan-in/fan-out axes in this
        framework's layout), in the order of `param_types`."""
        if self._param_info is None:
            raise RuntimeError("param_info is known once init_model_fn has run")
        return self._param_info

    def param_role_of(self, name: str) -> ParamRole:
        """INPUT / OUTPUT for parameters of the layers `input_layers` / `output_layers` name."""
        module = name.rsplit(".", 1)[0]
        if any(fnmatch.fnmatchcase(module, pattern) for pattern in self.output_layers):
            return ParamRole.OUTPUT
        if any(fnmatch.fnmatchcase(module, pattern) for pattern in self.input_layers):
            return ParamRole.INPUT
        return ParamRole.HIDDEN

    def _set_params(self, types: dict[str, ParamType], shapes: dict[str, tuple[int, ...]]) -> None:
        """Record what init_model_fn found: types, shapes and each parameter's ParamInfo."""
        self._param_types = types
        self._param_shapes = shapes
        self._param_info = {
            name: ParamInfo(
                t, self.param_role_of(name), shapes[name], *param_layout(self.framework, t, shapes[name])
            )
            for name, t in types.items()
        }

    @property
    def num_train_examples(self) -> int:
        if self._num_train_examples is None:
            raise RuntimeError("num_train_examples is known once the data is loaded")
        return self._num_train_examples

    def param_type_of(self, name: str, kind: ModuleKind) -> ParamType:
        """The type of parameter `name` (torch-style dotted name) owned by a layer of `kind`.
        Workloads override this to type attention projections by name."""
        if kind is ModuleKind.EMBEDDING:
            return ParamType.EMBEDDING
        if kind is ModuleKind.NORM:
            return ParamType.NORM_SCALE if name.endswith("weight") else ParamType.NORM_BIAS
        if name.endswith("bias"):
            return ParamType.BIAS
        if kind is ModuleKind.CONV:
            return ParamType.CONV_WEIGHT
        return ParamType.WEIGHT

    def resolve_dropout_rate(self, dropout_rate: Any) -> Any:
        """The rate `model_fn` applies: `default_dropout_rate` for None, else the rate as a
        float, checked to lie in [0, 1) and to be 0 for a model without dropout
        (`supports_dropout`). The JAX base also lets a traced rate through."""
        from algoperf.errors import AlgoperfError

        rate = float(self.default_dropout_rate if dropout_rate is None else dropout_rate)
        if not 0.0 <= rate < 1.0:
            raise AlgoperfError(
                f"{self.full_name}: dropout_rate={rate} is outside [0, 1); pass a probability "
                "p with 0 <= p < 1 (0 or None: no dropout)"
            )
        if rate and not self.supports_dropout:
            raise AlgoperfError(
                f"the {self.full_name} model has no dropout layers: dropout_rate={rate} cannot be "
                "honoured; pass dropout_rate=0 or None"
            )
        return rate

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

    # ---- training batches: indices from numpy, gathered by the framework ------------------
    def train_batch_indices(
        self, train: Mapping[str, Any], batch_size: int, seed: int
    ) -> Iterator[np.ndarray]:
        """Endless numpy indices into `train_source(train)`, one array per batch, deterministic
        given `seed`. Default: epochs of a seeded permutation of the train rows. Only the
        arrays' shapes are read, so the stream is the same in every framework."""
        return epoch_permutations(num_rows(train), batch_size, seed)

    def train_source(self, train: Mapping[str, Any]) -> dict[str, Any]:
        """The device arrays that batch indices address (default: the train split itself)."""
        return dict(train)

    def batch_from_rows(self, rows: dict[str, Any]) -> Batch:
        """A batch from the gathered rows (default: the rows are the batch). Written with
        `self.xp` only, so it runs inside the JAX backend's compiled gather too."""
        return rows

    def train_batches(self, train: Mapping[str, Any], batch_size: int, seed: int) -> Iterator[Batch]:
        """Endless stream of training batches, deterministic given `seed`.

        `train` holds the train split as framework arrays already on the device, so a batch
        is a gather on the device, never a host->device copy.
        """
        source = self.train_source(train)
        for indices in self.train_batch_indices(train, batch_size, seed):
            yield self.gather_train_batch(source, indices)

    # ---- the forward pass and the loss ----------------------------------------------------
    def model_inputs(self, batch: Batch) -> Any:
        """What the model is called with: `batch["inputs"]`, or more of the batch (a graph)."""
        return batch["inputs"]

    def loss_fn(
        self,
        targets: Any,
        outputs: Any,
        mask: Any | None = None,
        label_smoothing: float = 0.0,
    ) -> dict[str, Any]:
        """{"summed": summed loss, "n_valid_examples": count, "per_example": losses}; with a
        `mask`, only its nonzero entries count."""
        xp = self.xp
        if self.loss_type is LossType.SOFTMAX_CROSS_ENTROPY:
            per_example = self.per_example_cross_entropy(outputs, targets, label_smoothing)
        elif self.loss_type is LossType.MEAN_ABSOLUTE_ERROR:
            per_example = xp.abs(outputs - targets)
        else:
            per_example = xp.square(outputs - targets)
        if mask is None:
            return {
                "summed": per_example.sum(),
                "n_valid_examples": math.prod(per_example.shape),
                "per_example": per_example,
            }
        mask = xp.asarray(mask, dtype=per_example.dtype)
        return {
            "summed": (per_example * mask).sum(),
            "n_valid_examples": mask.sum(),
            "per_example": per_example * mask,
        }

    # ---- evaluation: one loop for every framework -----------------------------------------
    def batch_sums(self, outputs: Any, batch: Batch) -> dict[str, Any]:
        """Sums over one eval batch's valid examples (`batch["weights"]`): "loss", the metric
        and "count". Default: the metric is the mean loss (e.g. cross-entropy per token)."""
        loss = self.loss_fn(batch["targets"], outputs, self.example_weights(batch))
        return {"loss": loss["summed"], self.metric_name: loss["summed"], "count": loss["n_valid_examples"]}

    def example_weights(self, batch: Batch) -> Any:
        """`batch["weights"]` (one per row) broadcast to the shape of the targets."""
        weights, targets = batch["weights"], batch["targets"]
        extra = len(targets.shape) - len(weights.shape)
        return self.xp.broadcast_to(weights[(...,) + (None,) * extra], targets.shape)

    def eval_metrics(self, params: Any, model_state: Any, split: Mapping[str, Any]) -> dict[str, float]:
        """Means over the split of `batch_sums`, in batches of `eval_batch_size` rows.

        Returns {"loss": ..., self.metric_name: ...}.
        """
        totals: dict[str, float] = {}
        for start in range(0, num_rows(split), self.eval_batch_size):
            batch = self.eval_batch(split, start)
            for name, value in self.eval_batch_sums(params, model_state, batch).items():
                totals[name] = totals.get(name, 0.0) + float(value)
        count = totals.pop("count", 0.0)
        return {name: value / count if count else float("nan") for name, value in totals.items()}

    # ---- the framework base's part --------------------------------------------------------
    @abc.abstractmethod
    def to_device(self, arrays: dict[str, np.ndarray]) -> dict[str, Any]:
        """Move a split to the device as framework arrays."""

    @abc.abstractmethod
    def gather_train_batch(self, source: dict[str, Any], indices: np.ndarray) -> Batch:
        """`batch_from_rows` of the rows `indices` of every array of `source` (on the device)."""

    @abc.abstractmethod
    def eval_batch(self, split: Mapping[str, Any], start: int) -> Batch:
        """Rows start..start+eval_batch_size of a split, with `weights` (0 past its end)."""

    @abc.abstractmethod
    def eval_batch_sums(self, params: Any, model_state: Any, batch: Batch) -> dict[str, Any]:
        """`batch_sums` of the model's eval-mode outputs on one batch."""

    @abc.abstractmethod
    def per_example_cross_entropy(self, logits: Any, labels: Any, label_smoothing: float) -> Any:
        """Softmax cross-entropy per example (labels are class ids)."""

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
        dropout_rate: float | None = None,
    ) -> tuple[Any, Any]:
        """Forward pass. Returns (outputs, new_model_state).

        `dropout_rate` (AlgoPerf's call-time dropout): the probability of zeroing an activation
        at the model's dropout sites, in [0, 1); None means `default_dropout_rate` (0.0: no
        dropout). Dropout is active in `ForwardPassMode.TRAIN` only (JAX draws its masks from
        `rng`, torch from its global generator); evaluation never drops. At rate 0 the model
        runs exactly as without dropout. A workload with `supports_dropout = False` refuses a
        nonzero rate (`AlgoperfError`).
        """
