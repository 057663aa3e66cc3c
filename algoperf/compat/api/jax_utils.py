"""AlgoPerf's `jax_utils`: a flax Dropout whose rate is given at call time (AlgoPerf v0.6
models take `dropout_rate` per forward pass)."""

from __future__ import annotations

from typing import Any

import flax.linen as nn

from algoperf.frameworks.jax.dropout import dropout


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
        return dropout(self, inputs, rate, not deterministic, self.broadcast_dims, self.rng_collection)
