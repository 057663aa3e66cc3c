"""Torch <-> JAX parity helpers, generic over workloads (fashion_mnist, shakespeare, qm9, ...).

The JAX workloads name their parameters like torch's `named_parameters()` (see
`algoperf.frameworks.jax.flatten_params`), so the two models line up by name; only layouts
differ, and the parameter type says how:

    conv weight   torch (out, in, *kernel)  -> flax (*kernel, in, out)
    dense weight  torch (out, in)           -> flax (in, out), then reshaped to flax's shape
                  (so attention kernels such as flax's (in, heads, head_dim) map too)
    embedding     torch (num, dim)          =  flax (num, dim)
    bias / norm   same values, reshaped to flax's shape

A workload whose names cannot match exactly passes `name_map` (jax name -> torch name).
"""

from __future__ import annotations

import copy
from types import SimpleNamespace
from typing import Any

import numpy as np

from algoperf.spec import Hyperparameters, ParamType

DENSE_TYPES = {
    ParamType.WEIGHT,
    ParamType.ATTENTION_Q,
    ParamType.ATTENTION_K,
    ParamType.ATTENTION_V,
    ParamType.ATTENTION_QKV,
    ParamType.ATTENTION_OUT,
}


def torch_to_jax_layout(value: np.ndarray, param_type: ParamType, jax_shape: tuple[int, ...]) -> np.ndarray:
    """One torch parameter's values in the layout of the flax parameter of shape `jax_shape`."""
    if param_type is ParamType.CONV_WEIGHT:
        spatial = tuple(range(2, value.ndim))
        value = value.transpose(*spatial, 1, 0)
    elif param_type in DENSE_TYPES and value.ndim == 2:
        value = value.T
    if value.size != int(np.prod(jax_shape)):
        raise ValueError(
            f"a torch {param_type.value} of {value.size} values cannot become a flax parameter "
            f"of shape {jax_shape}"
        )
    return np.ascontiguousarray(value.reshape(jax_shape))


def torch_params_numpy(torch_model: Any) -> dict[str, np.ndarray]:
    return {name: p.detach().cpu().numpy() for name, p in torch_model.named_parameters()}


def torch_to_jax_params(
    torch_model: Any,
    jax_params: Any,
    param_types: dict[str, ParamType],
    name_map: dict[str, str] | None = None,
) -> Any:
    """A copy of `jax_params` holding the torch model's current values (layouts converted).

    `param_types` is the JAX workload's (keyed by the flax params' torch-style names).
    """
    import jax.numpy as jnp

    from algoperf.frameworks.jax import flatten_params, unflatten_params

    torch_values = torch_params_numpy(torch_model)
    jax_flat = flatten_params(jax_params)
    name_map = name_map or {}
    missing = [n for n in jax_flat if name_map.get(n, n) not in torch_values]
    unused = set(torch_values) - {name_map.get(n, n) for n in jax_flat}
    if missing or unused:
        raise KeyError(
            f"parameter names differ: in JAX only {missing}, in torch only {sorted(unused)}; "
            "pass name_map={jax_name: torch_name}"
        )
    converted = {
        name: jnp.asarray(
            torch_to_jax_layout(torch_values[name_map.get(name, name)], param_types[name], leaf.shape)
        )
        for name, leaf in jax_flat.items()
    }
    return unflatten_params(converted, jax_params)


def initialised_pair(torch_workload: Any, jax_workload: Any, prepare_torch: Any = None) -> SimpleNamespace:
    """Both workloads initialised with seed 0, for the parity tests.

    `torch_model` is the torch workload's model (passed through `prepare_torch(model) -> model`
    when given, e.g. to re-draw a zero-initialised layer), `jax_params` holds its weights in the
    JAX layout, and `fresh_torch_model` / `fresh_jax_params` are each workload's own init.
    """
    fresh_torch_model, _ = torch_workload.init_model_fn(0)
    fresh_jax_params, jax_state = jax_workload.init_model_fn(0)
    torch_model = prepare_torch(fresh_torch_model) if prepare_torch else fresh_torch_model
    return SimpleNamespace(
        torch_workload=torch_workload,
        torch_model=torch_model,
        fresh_torch_model=fresh_torch_model,
        jax_workload=jax_workload,
        jax_params=torch_to_jax_params(torch_model, fresh_jax_params, jax_workload.param_types),
        fresh_jax_params=fresh_jax_params,
        jax_state=jax_state,
    )


def layout_mismatches(
    torch_workload: Any, jax_workload: Any, name_map: dict[str, str] | None = None
) -> list[str]:
    """Names, parameter types and shapes (after the layout mapping) that differ; empty if none.

    Both workloads must have run `init_model_fn`.
    """
    name_map = name_map or {}
    problems = []
    torch_types, torch_shapes = torch_workload.param_types, torch_workload.param_shapes
    jax_types, jax_shapes = jax_workload.param_types, jax_workload.param_shapes
    torch_names = [name_map.get(n, n) for n in jax_types]
    if torch_names != list(torch_types):
        problems.append(f"names/order differ: jax {torch_names} vs torch {list(torch_types)}")
    for name, jax_type in jax_types.items():
        torch_name = name_map.get(name, name)
        if torch_name not in torch_types:
            continue
        if torch_types[torch_name] is not jax_type:
            problems.append(f"{name}: type {jax_type} in JAX, {torch_types[torch_name]} in torch")
        try:
            mapped = torch_to_jax_layout(
                np.zeros(torch_shapes[torch_name], np.float32), jax_type, jax_shapes[name]
            )
            if mapped.shape != jax_shapes[name]:
                raise ValueError("shape")
        except ValueError:
            problems.append(
                f"{name}: torch shape {torch_shapes[torch_name]} does not map to "
                f"JAX shape {jax_shapes[name]} as a {jax_type.value}"
            )
    return problems


def load_splits_or_skip(workload: Any) -> Any:
    """The workload's splits; a missing dataset skips the test on a developer's machine and
    fails it in CI (CI=true), where every dataset is installed and a skip would hide a gap."""
    import os

    import pytest

    from algoperf.errors import AlgoperfError

    try:
        return workload.load_splits()
    except AlgoperfError as e:
        if os.environ.get("CI") == "true":
            pytest.fail(f"{workload.full_name}: dataset missing in CI: {e}")
        pytest.skip(f"{workload.full_name}: dataset not installed: {e}")


# Data subsets that keep a workload's tests fast (applied when the workload has the attribute).
SUBSETS = {"max_molecules": 1500}


def make_workload(name: str, framework: str) -> Any:
    """The small size of a registry workload, on its test subset."""
    from algoperf.plugins import workload_class

    workload = workload_class(name, framework)("small")
    for attribute, value in SUBSETS.items():
        if hasattr(workload, attribute):
            setattr(workload, attribute, value)
    return workload


def loaded_pair(name: str) -> SimpleNamespace:
    """`initialised_pair` of workload `name` with both frameworks' data loaded (`splits`: the
    numpy splits). Use under a private ALGOPERF_CACHE: subsets build their own cache."""
    import torch

    torch.set_num_threads(1)
    torch_workload, jax_workload = make_workload(name, "torch"), make_workload(name, "jax")
    splits = load_splits_or_skip(torch_workload)
    jax_workload.load_splits()
    pair = initialised_pair(torch_workload, jax_workload)
    pair.splits = splits
    return pair


def perturbed(torch_model: Any, scale: float = 0.05) -> Any:
    """A copy with every parameter moved by N(0, scale): zero-initialised layers come alive and
    activations reach the non-linear ranges a fresh init barely touches."""
    import torch

    model = copy.deepcopy(torch_model)
    generator = torch.Generator().manual_seed(1)
    with torch.no_grad():
        for p in model.parameters():
            p.add_(scale * torch.randn(p.shape, generator=generator))
    return model


def parameter_count(shapes: dict[str, tuple[int, ...]]) -> int:
    return int(sum(np.prod(s) for s in shapes.values()))


def sgd_plugins(learning_rate: float) -> tuple[Any, Any]:
    """Plain-SGD optimizer plugins for both frameworks, run through the harness's own adapters."""
    import optax
    import torch

    def make_torch_sgd(params, hparams, workload):
        return torch.optim.SGD(params, learning_rate), None

    torch_plugin = SimpleNamespace(make_optimizer=make_torch_sgd)
    jax_plugin = SimpleNamespace(make_optimizer=lambda hparams, workload: optax.sgd(learning_rate))
    return torch_plugin, jax_plugin


def train_losses(
    framework: str,
    workload: Any,
    params: Any,
    model_state: Any,
    plugin: Any,
    batches: list[dict[str, np.ndarray]],
    hparams: dict[str, Any] | None = None,
) -> list[float]:
    """The loss of each of `batches`' steps through the harness's standard step for `framework`.

    Trains a copy: `params` (a torch module or a JAX tree, whose buffers the step donates) is
    left as it was.
    """
    from algoperf.frameworks import load_backend

    fw = load_backend(framework)
    if framework == "torch":
        params = copy.deepcopy(params)
    else:
        import jax
        import jax.numpy as jnp

        params = jax.tree.map(jnp.copy, params)
    api = fw.plugin_to_full(plugin)
    hyperparameters = Hyperparameters(hparams or {})
    state = api["init_optimizer_state"](
        workload=workload,
        model_params=params,
        model_state=model_state,
        hyperparameters=hyperparameters,
        rng=fw.step_rng(0, -1),
    )
    losses = []
    for step, batch in enumerate(batches):
        state, params, model_state = api["update_params"](
            workload=workload,
            current_param_container=params,
            current_params_types=workload.param_types,
            model_state=model_state,
            hyperparameters=hyperparameters,
            batch=workload.to_device(batch),
            loss_type=workload.loss_type,
            optimizer_state=state,
            eval_results=[],
            global_step=step,
            rng=fw.step_rng(0, step),
        )
        losses.append(fw.to_float(state["last_loss"]))
    return losses
