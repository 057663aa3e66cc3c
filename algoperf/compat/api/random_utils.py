"""AlgoPerf's `random_utils`: PRNG helpers over JAX keys."""

from __future__ import annotations

from typing import Any

import jax


def PRNGKey(seed: int) -> Any:  # noqa: N802 (AlgoPerf's name)
    return jax.random.PRNGKey(seed)


def split(seed: Any, num: int = 2) -> Any:
    return jax.random.split(seed, num)


def fold_in(seed: Any, data: Any) -> Any:
    return jax.random.fold_in(seed, data)
