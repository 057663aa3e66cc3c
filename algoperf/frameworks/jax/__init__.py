"""The JAX backend (see algoperf/frameworks/backend.py). Only this package, and workloads and
submissions written for JAX, import jax, optax and flax."""

from __future__ import annotations

from algoperf.frameworks.backend import ModuleBackend, default_threads
from algoperf.frameworks.jax import runtime, state
from algoperf.frameworks.jax.compile_ledger import compile_count, compile_time_s
from algoperf.frameworks.jax.naming import (
    TORCH_LEAF_NAMES,
    flatten_key,
    flatten_params,
    param_shapes,
    unflatten_params,
)
from algoperf.frameworks.jax.plugin import make_train_step, plugin_to_full
from algoperf.frameworks.jax.runtime import (
    device,
    is_finite,
    seed_everything,
    set_threads,
    step_rng,
    sync,
    to_float,
)
from algoperf.frameworks.jax.schedules import warmup_cosine
from algoperf.frameworks.jax.torch_defaults import (
    TORCH_DEFAULT_KERNEL,
    TORCH_NORM_EPS,
    torch_default_bias,
    torch_layer_norm,
)
from algoperf.frameworks.jax.workload import JaxWorkload, to_compute_dtype

FRAMEWORK = "jax"


BACKEND = ModuleBackend(FRAMEWORK, JaxWorkload, runtime, state, plugin_to_full)

__all__ = [
    "BACKEND",
    "FRAMEWORK",
    "TORCH_DEFAULT_KERNEL",
    "TORCH_LEAF_NAMES",
    "TORCH_NORM_EPS",
    "JaxWorkload",
    "compile_count",
    "compile_time_s",
    "default_threads",
    "device",
    "flatten_key",
    "flatten_params",
    "is_finite",
    "make_train_step",
    "param_shapes",
    "plugin_to_full",
    "seed_everything",
    "set_threads",
    "step_rng",
    "sync",
    "to_compute_dtype",
    "to_float",
    "torch_default_bias",
    "torch_layer_norm",
    "unflatten_params",
    "warmup_cosine",
]
