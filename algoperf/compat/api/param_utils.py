"""AlgoPerf's `param_utils`: parameter shapes and types as AlgoPerf lays them out.

PyTorch: dicts keyed by `named_parameters()` names. JAX: trees shaped like the parameters.
The types come from the workload (the harness types every parameter by the layer that owns
it), translated to AlgoPerf's ParameterType names by algoperf.compat.workload.
"""

from __future__ import annotations

from typing import Any

from algoperf.compat.api.spec import ShapeTuple


def pytorch_param_shapes(model: Any) -> dict[str, ShapeTuple]:
    return {name: ShapeTuple(tuple(p.shape)) for name, p in model.named_parameters()}


def jax_param_shapes(params: Any) -> Any:
    import jax

    return jax.tree.map(lambda x: ShapeTuple(tuple(x.shape)), params)


def pytorch_param_types(param_shapes: dict[str, Any]) -> dict[str, Any]:
    """AlgoPerf's name-based guess; a submission given a workload should read
    `workload.model_params_types`, which is exact."""
    from algoperf.compat.api.spec import ParameterType

    types = {}
    for name in param_shapes:
        lowered = name.lower()
        if "norm" in lowered or "ln" in lowered.split("."):
            bias = "bias" in lowered
            types[name] = ParameterType.LAYER_NORM_BIAS if bias else ParameterType.LAYER_NORM_SCALE
        elif "embed" in lowered:
            types[name] = ParameterType.EMBEDDING
        elif "bias" in lowered:
            types[name] = ParameterType.BIAS
        elif "conv" in lowered:
            types[name] = ParameterType.CONV_WEIGHT
        else:
            types[name] = ParameterType.WEIGHT
    return types


def jax_param_types(param_shapes: Any) -> Any:
    """The JAX counterpart of `pytorch_param_types` (a tree shaped like the parameters)."""
    from algoperf.frameworks.jax.naming import flatten_params, unflatten_params

    flat = flatten_params(param_shapes)
    return unflatten_params(pytorch_param_types(flat), param_shapes) if flat else {}
