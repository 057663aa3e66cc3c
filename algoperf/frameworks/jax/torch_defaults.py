"""torch's default initialisers and norm settings as flax pieces, so a JAX model can start
from the same distributions as its torch twin."""

from __future__ import annotations

from typing import Any

import flax.linen as nn
import jax
import jax.numpy as jnp

# torch's default for Conv/Linear weights: kaiming_uniform(a=sqrt(5)) = U(±1/sqrt(fan_in)).
TORCH_DEFAULT_KERNEL = nn.initializers.variance_scaling(1 / 3, "fan_in", "uniform")
TORCH_NORM_EPS = 1e-5  # torch's LayerNorm/GroupNorm default (flax's is 1e-6)


def torch_default_bias(fan_in: int) -> nn.initializers.Initializer:
    """torch's Linear bias default: U(±1/sqrt(fan_in))."""
    bound = 1 / fan_in**0.5

    def init(key: jax.Array, shape: tuple[int, ...], dtype: Any = jnp.float32) -> jax.Array:
        return jax.random.uniform(key, shape, dtype, -bound, bound)

    return init


def torch_layer_norm(name: str) -> nn.LayerNorm:
    """nn.LayerNorm as torch computes it (eps 1e-5, two-pass variance)."""
    return nn.LayerNorm(epsilon=TORCH_NORM_EPS, use_fast_variance=False, name=name)
