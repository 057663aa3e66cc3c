"""The torch process: device, threads, seeds, device sync, per-step rngs, compile time."""

from __future__ import annotations

import sys
from typing import Any

import numpy as np
import torch


def device() -> torch.device:
    return torch.device("cuda" if torch.cuda.is_available() else "cpu")


def set_threads(num_threads: int) -> None:
    """Give this process its share of the cores (oversubscription costs ~37x on 2 cores)."""
    torch.set_num_threads(num_threads)
    try:
        torch.set_num_interop_threads(max(1, num_threads))
    except RuntimeError:  # only settable before the first parallel op; harmless if too late
        pass


def seed_everything(seed: int) -> None:
    torch.manual_seed(seed)
    np.random.seed(seed % (2**32))


def sync(*_: Any) -> None:
    """Wait for queued device work before the clock is read (CPU ops are already synchronous)."""
    if torch.cuda.is_available():
        torch.cuda.synchronize()


def step_rng(seed: int, step: int) -> int:
    """The per-call rng handed to a submission: an int seed (torch code seeds its own generators)."""
    return (seed * 1_000_003 + step + 1) & 0x7FFFFFFF


def is_finite(value: Any) -> bool:
    return bool(torch.isfinite(torch.as_tensor(value)).all())


def to_float(value: Any) -> float:
    return float(value.detach().item()) if torch.is_tensor(value) else float(value)


def compile_time_s() -> float:
    """Seconds torch.compile has spent so far in this process (0 when compile is off)."""
    if "torch._dynamo" not in sys.modules:  # never imported: nothing compiled (importing costs ~2 s)
        return 0.0
    try:
        from torch._dynamo.utils import compile_times

        table = compile_times(repr="csv", aggregate=True)
        return float(sum(float(v) for v in table[1])) if table and len(table) > 1 else 0.0
    except Exception:  # private API: absent or changed means no compile accounting
        return 0.0
