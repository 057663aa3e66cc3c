"""The workload as an AlgoPerf submission sees it: AlgoPerf's names and argument names on top of
the harness's submission view (algoperf.rules.WorkloadView), which still decides what is
visible. Nothing here gives a submission more than the harness's own submissions get."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from algoperf.compat.api import spec as algoperf_spec
from algoperf.spec import ForwardPassMode, LossType, ParamType

# The harness types parameters by the layer that owns them; AlgoPerf names batch and layer
# norms apart. None of the harness's models keeps batch statistics, so a norm is a layer norm
# (GroupNorm included): BATCH_NORM_SCALE/BIAS are never given.
PARAMETER_TYPES = {
    ParamType.WEIGHT: "WEIGHT",
    ParamType.BIAS: "BIAS",
    ParamType.CONV_WEIGHT: "CONV_WEIGHT",
    ParamType.NORM_SCALE: "LAYER_NORM_SCALE",
    ParamType.NORM_BIAS: "LAYER_NORM_BIAS",
    ParamType.EMBEDDING: "EMBEDDING",
    ParamType.ATTENTION_Q: "ATTENTION_Q",
    ParamType.ATTENTION_K: "ATTENTION_K",
    ParamType.ATTENTION_V: "ATTENTION_V",
    ParamType.ATTENTION_QKV: "ATTENTION_QKV",
    ParamType.ATTENTION_OUT: "ATTENTION_OUT",
}


def algoperf_param_type(kind: ParamType) -> algoperf_spec.ParameterType:
    return algoperf_spec.ParameterType[PARAMETER_TYPES[kind]]


def harness_mode(mode: Any) -> ForwardPassMode:
    """AlgoPerf's ForwardPassMode (or the harness's) as the harness's."""
    name = getattr(mode, "name", None)
    if name not in ForwardPassMode.__members__:
        raise ValueError(f"mode must be spec.ForwardPassMode.TRAIN or .EVAL, got {mode!r}")
    return ForwardPassMode[name]


def algoperf_loss_type(loss_type: LossType) -> algoperf_spec.LossType:
    return algoperf_spec.LossType[loss_type.name]


class MetricsLogger:
    """`workload.metrics_logger`: keeps the scalars a submission logs (its loss, grad norm, …),
    so the worker can hand them to the supervisor with its next report."""

    MAX_PENDING = 10_000  # a submission logging every step cannot grow the worker without bound

    def __init__(self) -> None:
        self.pending: list[tuple[int, dict[str, float]]] = []
        self.dropped = 0  # entries past MAX_PENDING since the last drain (the adapter says so)

    def append_scalar_metrics(
        self,
        metrics: dict[str, Any],
        global_step: int,
        preemption_count: int | None = None,
        is_eval: bool = False,
    ) -> None:
        del preemption_count, is_eval
        if len(self.pending) >= self.MAX_PENDING:
            self.dropped += 1
            return
        values = {}
        for name, value in dict(metrics).items():
            try:
                values[str(name)] = float(value)
            except (TypeError, ValueError):
                continue  # AlgoPerf's logger keeps scalars only
        self.pending.append((int(global_step), values))

    def drain(self) -> list[tuple[int, dict[str, float]]]:
        pending, self.pending, self.dropped = self.pending, [], 0
        return pending


@dataclass(frozen=True)
class TrialTimes:
    """What AlgoPerf's workload says about time, for this trial."""

    max_allowed_runtime_sec: float
    eval_period_time_sec: float | None  # None: evaluations are every N steps, not every N seconds


class AlgoperfWorkload:
    """AlgoPerf's workload interface over the harness's submission view."""

    def __init__(self, view: Any, framework: str, times: TrialTimes):
        object.__setattr__(self, "_view", view)
        object.__setattr__(self, "_framework", framework)
        object.__setattr__(self, "_times", times)
        object.__setattr__(self, "metrics_logger", MetricsLogger())
        object.__setattr__(self, "_param_shapes", None)
        object.__setattr__(self, "_param_types", None)
        object.__setattr__(self, "_default_dropout_rate", None)

    def use_dropout_rate(self, rate: float) -> None:
        """The rate for forward passes that pass none: AlgoPerf's runner built the model with
        the hyperparameters' `dropout_rate` (v0.5), so a submission of that era never passes
        one to model_fn."""
        object.__setattr__(self, "_default_dropout_rate", float(rate))

    def bind_params(self, params: Any) -> None:
        """Lay out `param_shapes` and `model_params_types` as AlgoPerf does: dicts keyed like
        `named_parameters()` (PyTorch) or trees shaped like the parameters (JAX)."""
        view = self._view
        types = {name: algoperf_param_type(kind) for name, kind in view.param_types.items()}
        shapes = {name: algoperf_spec.ShapeTuple(shape) for name, shape in view.param_shapes.items()}
        if self._framework == "jax":
            from algoperf.frameworks.jax.naming import unflatten_params

            types, shapes = unflatten_params(types, params), unflatten_params(shapes, params)
        object.__setattr__(self, "_param_types", types)
        object.__setattr__(self, "_param_shapes", shapes)

    # ---- AlgoPerf's names -------------------------------------------------------------------
    @property
    def param_shapes(self) -> Any:
        if self._param_shapes is None:
            raise ValueError("workload.param_shapes is known once the model is initialised")
        return self._param_shapes

    @property
    def model_params_types(self) -> Any:
        if self._param_types is None:
            raise ValueError("workload.model_params_types is known once the model is initialised")
        return self._param_types

    @property
    def loss_type(self) -> algoperf_spec.LossType:
        return algoperf_loss_type(self._view.loss_type)

    @property
    def target_metric_name(self) -> str:
        return self._view.metric_name

    @property
    def max_allowed_runtime_sec(self) -> float:
        return self._times.max_allowed_runtime_sec

    @property
    def eval_period_time_sec(self) -> float | None:
        return self._times.eval_period_time_sec

    def model_fn(
        self,
        params: Any,
        augmented_and_preprocessed_input_batch: Any,
        model_state: Any,
        mode: Any,
        rng: Any,
        update_batch_norm: bool,
        dropout_rate: Any = None,
        use_running_average_bn: bool | None = None,
    ) -> tuple[Any, Any]:
        """AlgoPerf's model_fn; `dropout_rate` is honoured where the model has dropout."""
        del use_running_average_bn  # no model of the harness keeps batch statistics
        if dropout_rate is None:
            dropout_rate = self._default_dropout_rate
        extra = {} if dropout_rate is None else {"dropout_rate": dropout_rate}
        batch, mode = augmented_and_preprocessed_input_batch, harness_mode(mode)
        return self._view.model_fn(params, batch, model_state, mode, rng, update_batch_norm, **extra)

    def loss_fn(
        self, label_batch: Any, logits_batch: Any, mask_batch: Any = None, label_smoothing: float = 0.0
    ) -> dict[str, Any]:
        """AlgoPerf's loss_fn: {'summed', 'n_valid_examples', 'per_example'}."""
        return self._view.loss_fn(label_batch, logits_batch, mask_batch, label_smoothing)

    def output_activation_fn(self, logits_batch: Any, framework: str) -> Any:
        if self._view.loss_type is not LossType.SOFTMAX_CROSS_ENTROPY:
            return logits_batch
        if framework == "pytorch":
            import torch

            return torch.softmax(logits_batch, dim=-1)
        import jax

        return jax.nn.softmax(logits_batch, axis=-1)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._view, name)  # the harness's view decides what else is visible

    def __setattr__(self, name: str, value: Any) -> None:
        raise AttributeError("the workload is fixed by the benchmark; a submission cannot change it")

    def __repr__(self) -> str:
        return f"<workload {self._view.full_name} (AlgoPerf view)>"
