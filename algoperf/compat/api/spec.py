"""AlgoPerf's `spec` module: enums, type aliases and the error a submission raises to end its
trial. Names and member names are AlgoPerf's (v0.5 and v0.6); nothing here imports a framework.
"""

from __future__ import annotations

import enum
from typing import Any

from algoperf.spec import TrainingComplete


class LossType(enum.Enum):
    SOFTMAX_CROSS_ENTROPY = 0
    SIGMOID_CROSS_ENTROPY = 1
    MEAN_SQUARED_ERROR = 2
    CTC_LOSS = 3
    MEAN_ABSOLUTE_ERROR = 4


class ForwardPassMode(enum.Enum):
    TRAIN = 0
    EVAL = 1


class ParameterType(enum.Enum):
    WEIGHT = 0
    BIAS = 1
    CONV_WEIGHT = 2
    BATCH_NORM_SCALE = 3
    BATCH_NORM_BIAS = 4
    LAYER_NORM_SCALE = 5
    LAYER_NORM_BIAS = 6
    EMBEDDING = 7
    ATTENTION_Q = 8
    ATTENTION_K = 9
    ATTENTION_V = 10
    ATTENTION_OUT = 11
    ATTENTION_QKV = 12
    ATTENTION_KV = 13
    ATTENTION_BIAS = 14


class TrainingCompleteError(TrainingComplete):
    """Raised by `update_params` to end training early; the harness evaluates once more and
    records the trial as `training_complete` (AlgoPerf's meaning)."""


class ShapeTuple:
    """A parameter's shape as a pytree leaf: `workload.param_shapes` maps over it without
    descending into the tuple."""

    def __init__(self, shape_tuple: tuple[int, ...]):
        self.shape_tuple = tuple(shape_tuple)

    def __repr__(self) -> str:
        return f"ShapeTuple({self.shape_tuple})"

    def __eq__(self, other: object) -> bool:
        return isinstance(other, ShapeTuple) and self.shape_tuple == other.shape_tuple

    def __hash__(self) -> int:
        return hash(self.shape_tuple)


Tensor = Any
Shape = tuple[int, ...] | ShapeTuple
ParameterKey = str
ParameterShapeTree = dict[str, Any]
ParameterContainer = Any  # a nested dict of arrays (JAX) or an nn.Module (PyTorch)
ParameterTypeTree = dict[str, Any]
RandomState = Any
OptimizerState = dict[str, Any] | tuple[Any, Any]
Hyperparameters = Any
Timing = int
Steps = int
ModelAuxiliaryState = Any
ModelInitState = tuple[ParameterContainer, ModelAuxiliaryState]
UpdateReturn = tuple[OptimizerState, ParameterContainer, ModelAuxiliaryState]
Workload = Any  # the workload a submission receives (algoperf.compat.workload.AlgoperfWorkload)

InitOptimizerFn = Any
UpdateParamsFn = Any
PrepareForEvalFn = Any
DataSelectionFn = Any
