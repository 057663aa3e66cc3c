"""The submission's side of the benchmark: the types both sides share (parameter, loss and
forward-pass kinds, hyperparameters, batches) and the Submission interface.

A submission is either an *optimizer plugin* (`make_optimizer` + `search_space.yaml`), which
the framework backends turn into the full AlgoPerf-style API, or implements that full API
itself. The workload interface lives in `algoperf.workload`.
"""

from __future__ import annotations

import enum
import inspect
import re
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


class ParamRole(enum.Enum):
    """Where a parameter sits in the network. Orthogonal to its ParamType: the head of a
    classifier is a WEIGHT and a BIAS, the input layer may be a convolution or an embedding.
    Optimizers that treat the ends of a network apart (Muon: matrices of hidden layers only)
    read this instead of guessing which weight is the last."""

    INPUT = "input"  # reads the data: token/position embeddings, the stem, feature encoders
    HIDDEN = "hidden"
    OUTPUT = "output"  # produces the model's outputs: the final layer (logits, predictions)


@dataclass(frozen=True)
class ParamInfo:
    """One parameter as an optimizer may see it: kind, position, shape and layout.

    The layout says which axes index the layer's outputs (fan-out) and which its inputs
    (fan-in: input features, or input channels and kernel positions), because the frameworks
    store the same layer differently: a dense weight is (out, in) in torch and (in, out) in
    flax, a convolution (out, in, kh, kw) in torch and (kh, kw, in, out) in flax. An embedding
    table (num, dim) maps a one-hot input of `num` to `dim` outputs in both. A vector (bias,
    norm scale) has only fan-out axes. Fan-in axes are listed in torch's order (input
    channels, then kernel positions), so `as_matrix` gives the same (fan_out, fan_in) matrix
    in both frameworks and `b.from_matrix(a.as_matrix(x))` converts between their layouts.
    """

    type: ParamType
    role: ParamRole
    shape: tuple[int, ...]
    fan_in_axes: tuple[int, ...]
    fan_out_axes: tuple[int, ...]

    @property
    def fan_in(self) -> int:
        return _product(self.shape[a] for a in self.fan_in_axes)

    @property
    def fan_out(self) -> int:
        return _product(self.shape[a] for a in self.fan_out_axes)

    @property
    def is_matrix(self) -> bool:
        """A weight with both fan-in and fan-out axes: it can be viewed as a matrix."""
        return bool(self.fan_in_axes) and bool(self.fan_out_axes)

    @property
    def matrix_axes(self) -> tuple[int, ...]:
        """The permutation that puts fan-out axes first, then fan-in axes: transpose by it and
        reshape to (fan_out, fan_in) to view the weight as torch's (out, in) matrix."""
        return self.fan_out_axes + self.fan_in_axes

    def as_matrix(self, value: Any) -> Any:
        """`value` (a torch tensor, jax or numpy array of this shape) as a (fan_out, fan_in) matrix."""
        if not self.is_matrix:
            raise ValueError(f"a {self.type.value} of shape {self.shape} has no matrix view")
        permute = getattr(value, "permute", None) or value.transpose
        return permute(*self.matrix_axes).reshape(self.fan_out, self.fan_in)

    def from_matrix(self, matrix: Any) -> Any:
        """The inverse of `as_matrix`: a (fan_out, fan_in) matrix back in this parameter's layout."""
        permuted = matrix.reshape(*(self.shape[a] for a in self.matrix_axes))
        inverse = sorted(range(len(self.matrix_axes)), key=self.matrix_axes.__getitem__)
        permute = getattr(permuted, "permute", None) or permuted.transpose
        return permute(*inverse)


def _product(values: Any) -> int:
    result = 1
    for v in values:
        result *= int(v)
    return result


def param_layout(framework: str, param_type: ParamType, shape: tuple[int, ...]) -> tuple[tuple, tuple]:
    """(fan_in_axes, fan_out_axes) of a parameter of `param_type` and `shape` as `framework`
    ("torch" | "jax") stores it."""
    ndim = len(shape)
    axes = tuple(range(ndim))
    if ndim <= 1 or param_type in VECTOR_TYPES:
        return (), axes
    if param_type is ParamType.EMBEDDING:
        return (0,), axes[1:]
    if framework == "torch":  # (out, in, *kernel)
        return axes[1:], (0,)
    # flax: dense (in, out), convolution (*kernel, in, out). Fan-in axes are listed in torch's
    # order, input channels before kernel positions, so `as_matrix` is the same matrix in both.
    return (ndim - 2, *axes[: ndim - 2]), (ndim - 1,)


VECTOR_TYPES = frozenset({ParamType.BIAS, ParamType.NORM_SCALE, ParamType.NORM_BIAS})


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
# A plugin's optional `diagnostics(...)`: scalars recorded with every evaluation (evals.csv
# columns `plugin.<name>`). It receives what make_optimizer built; a full submission's receives
# its optimizer_state.
DIAGNOSTICS_API: dict[str, list[str]] = {
    "torch": ["optimizer"],
    "jax": ["opt_state"],
    "full": ["optimizer_state"],
}
# A plugin's optional `step_kind`: what its standard step hands the optimizer.
#   "gradient"      the gradient (default)
#   "closure"       the gradient, and a closure that recomputes loss and gradient (torch:
#                   optimizer.step(closure); JAX: value_fn / grad_fn, always offered)
#   "forward_only"  no gradient: a closure (torch) or value_fn (JAX) that evaluates the loss
STEP_KINDS = ("gradient", "closure", "forward_only")


DIAGNOSTIC_NAME = re.compile(r"^[A-Za-z][A-Za-z0-9_.]{0,63}$")
MAX_DIAGNOSTICS = 32


def checked_diagnostics(values: Any, to_float: Any = float) -> dict[str, float]:
    """A submission's `diagnostics` result as {name: float}, or a ValueError saying what is wrong
    (checked in the worker, where the submission's error belongs, and again by the supervisor,
    which trusts nothing the worker sends)."""
    if not isinstance(values, Mapping):
        raise ValueError(
            f"diagnostics(...) must return a dict of name -> number, got {type(values).__name__}"
        )
    if len(values) > MAX_DIAGNOSTICS:
        raise ValueError(
            f"diagnostics(...) returned {len(values)} values; at most {MAX_DIAGNOSTICS} are kept"
        )
    checked = {}
    for name, value in values.items():
        if not (isinstance(name, str) and DIAGNOSTIC_NAME.match(name)):
            raise ValueError(
                f"diagnostics name {name!r} must start with a letter and hold only letters, digits, "
                "'_' and '.' (at most 64 characters)"
            )
        try:
            checked[name] = float(to_float(value))
        except (TypeError, ValueError) as e:
            raise ValueError(f"diagnostics value {name!r} is not a scalar number ({e})") from None
    return checked


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
    diagnostics: Any | None = None  # optimizer_state -> {name: scalar}, recorded at every eval


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
