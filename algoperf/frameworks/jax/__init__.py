"""The JAX backend (see algoperf/frameworks/backend.py). Only this package, and workloads and
submissions written for JAX, import jax, optax and flax.

Workloads import `JaxWorkload` and the torch-default pieces that let a flax model start where
its torch twin does; submissions import `warmup_cosine`, `until_step_hint`, `make_train_step`
and the parameter naming helpers; the harness asks `BACKEND` (or
`algoperf.frameworks.load_backend("jax")`).
"""

from __future__ import annotations

from algoperf.frameworks.backend import ModuleBackend
from algoperf.frameworks.jax import runtime, state
from algoperf.frameworks.jax.compile_ledger import compile_count
from algoperf.frameworks.jax.dropout import dropout
from algoperf.frameworks.jax.naming import flatten_params, label_params, param_shapes, unflatten_params
from algoperf.frameworks.jax.plugin import make_train_step, plugin_to_full
from algoperf.frameworks.jax.schedules import warmup_cosine
from algoperf.frameworks.jax.torch_defaults import (
    TORCH_DEFAULT_KERNEL,
    TORCH_NORM_EPS,
    torch_default_bias,
    torch_layer_norm,
)
from algoperf.frameworks.jax.workload import JaxWorkload, to_compute_dtype
from algoperf.spec import until_step_hint

BACKEND = ModuleBackend("jax", JaxWorkload, runtime, state, plugin_to_full)

__all__ = [
    "BACKEND",
    "TORCH_DEFAULT_KERNEL",
    "TORCH_NORM_EPS",
    "JaxWorkload",
    "compile_count",
    "dropout",
    "flatten_params",
    "label_params",
    "make_train_step",
    "param_shapes",
    "to_compute_dtype",
    "torch_default_bias",
    "torch_layer_norm",
    "until_step_hint",
    "unflatten_params",
    "warmup_cosine",
]
