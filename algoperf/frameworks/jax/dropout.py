"""Dropout whose rate is a call-time argument, so one built flax model serves every rate.

flax's `nn.Dropout` fixes its rate when the module is built; AlgoPerf's `model_fn` takes
`dropout_rate` per call, and submissions often pass it as a traced argument of their jitted
train step. `dropout` below accepts a Python number (0: the graph is unchanged) or a traced
value (masked with `jnp.where`, no Python branch on the tracer).
"""

from __future__ import annotations

import numbers
from typing import Any

import flax.linen as nn
import jax
import jax.numpy as jnp


def is_zero(rate: Any) -> bool:
    """Whether `rate` is a Python (or numpy) number equal to 0; False for arrays and tracers."""
    return isinstance(rate, numbers.Real) and rate == 0


def dropout(
    module: nn.Module,
    x: jax.Array,
    rate: Any,
    train: bool,
    broadcast_dims: tuple[int, ...] = (),
    rng_collection: str = "dropout",
) -> jax.Array:
    """Inverted dropout of `x` inside `module`'s compact method: each entry is kept with
    probability 1 - rate and scaled by 1 / (1 - rate), from a key of the `rng_collection` RNG
    stream; along `broadcast_dims` one draw serves the whole axis.

    Returns `x` itself (no random draw, nothing added to the compiled graph) when not training
    or when `rate` is a number equal to 0. `rate` may be a traced scalar; the caller checks that
    it lies in [0, 1) (a traced rate of 0 keeps every entry).
    """
    if not train or is_zero(rate):
        return x
    keep = 1.0 - rate
    broadcast = {dim % x.ndim for dim in broadcast_dims}  # negative axes count from the end
    shape = tuple(1 if dim in broadcast else size for dim, size in enumerate(x.shape))
    mask = jax.random.bernoulli(module.make_rng(rng_collection), keep, shape)
    scale = 1.0 / keep if isinstance(rate, numbers.Real) else jnp.asarray(1.0 / keep, x.dtype)
    return jnp.where(mask, x * scale, jnp.zeros_like(x))
