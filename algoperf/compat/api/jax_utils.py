"""AlgoPerf's `jax_utils`: a flax Dropout whose rate is given at call time (AlgoPerf v0.6
models take `dropout_rate` per forward pass)."""

from __future__ import annotations

from typing import Any

import flax.linen as nn
import jax
import jax.numpy as jnp


class Dropout(nn.Module):
    """`Dropout(rate)(x, deterministic, rate=None)`: `rate` at call time overrides the field."""

    rate: float = 0.0
    broadcast_dims: tuple[int, ...] = ()
    deterministic: bool | None = None
    rng_collection: str = "dropout"

    @nn.compact
    def __call__(self, inputs: Any, deterministic: bool | None = None, rate: Any = None) -> Any:
        deterministic = nn.merge_param("deterministic", self.deterministic, deterministic)
        rate = self.rate if rate is None else rate
        if deterministic or (isinstance(rate, (int, float)) and rate == 0.0):
            return inputs
        keep = 1.0 - rate
        shape = list(inputs.shape)
        for dim in self.broadcast_dims:
            shape[dim] = 1
        mask = jax.random.bernoulli(self.make_rng(self.rng_collection), p=keep, shape=shape)
        mask = jnp.broadcast_to(mask, inputs.shape)
        return jnp.where(mask, inputs / keep, jnp.zeros_like(inputs))
