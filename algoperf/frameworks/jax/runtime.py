"""The JAX process: device, threads, seeds, device sync, per-step PRNG keys.

Threads: XLA sizes its CPU thread pools when the backend starts (the first computation), from
the environment variable PJRT_NPROC; `set_threads` must therefore run before anything touches a
device. The runner calls it first thing in a trial process.
"""

from __future__ import annotations

import functools
import os
import warnings
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from algoperf.frameworks.jax.compile_ledger import compile_time_s  # noqa: F401 (part of the runtime)


def device() -> jax.Device:
    return jax.devices()[0]


def _backend_started() -> bool:
    from jax._src import xla_bridge  # private, but the only way to ask without starting it

    return xla_bridge.backends_are_initialized()


def set_threads(num_threads: int) -> None:
    """Give this process its share of the cores: XLA's CPU pools get `num_threads` threads.

    Takes effect only before the backend starts (first jax computation); afterwards it warns
    when asked for a different count. XLA_FLAGS' `intra_op_parallelism_threads` and
    `--xla_cpu_multi_thread_eigen=false` do not limit the threads of jax 0.10's CPU runtime
    (checked per thread in /proc); PJRT_NPROC does.
    """
    num_threads = max(1, int(num_threads))
    if _backend_started():
        if os.environ.get("PJRT_NPROC") != str(num_threads):
            warnings.warn(
                f"set_threads({num_threads}) came after JAX started its CPU backend, so XLA "
                f"keeps PJRT_NPROC={os.environ.get('PJRT_NPROC', 'all cores')}; set it before "
                "the first jax computation (or export PJRT_NPROC).",
                stacklevel=2,
            )
        return
    os.environ["PJRT_NPROC"] = str(num_threads)


def seed_everything(seed: int) -> None:
    """JAX has no global RNG (keys are explicit); seed numpy for host-side randomness."""
    np.random.seed(seed % (2**32))


def sync(*trees: Any) -> None:
    """Wait for queued device work before the clock is read."""
    jax.block_until_ready(trees)


@functools.lru_cache(maxsize=64)
def _root_key(seed: int) -> jax.Array:
    return jax.random.key(seed)


_fold_in = jax.jit(jax.random.fold_in)


def step_rng(seed: int, step: int) -> jax.Array:
    """The per-call PRNG key handed to a submission: fold_in(key(seed), step).

    One cached dispatch per call (the root key is cached, fold_in is compiled once);
    `step` may be negative (the runner uses -1 for init) and is taken modulo 2**32.
    """
    return _fold_in(_root_key(int(seed)), np.uint32(int(step) & 0xFFFFFFFF))


def is_finite(value: Any) -> bool:
    return bool(jnp.all(jnp.isfinite(jnp.asarray(value))))


def to_float(value: Any) -> float:
    return float(value)
