"""The torch backend (see algoperf/frameworks/backend.py). Only this package, and workloads
and submissions written for torch, import torch."""

from __future__ import annotations

from algoperf.frameworks.backend import ModuleBackend, default_threads
from algoperf.frameworks.torch import runtime, state
from algoperf.frameworks.torch.plugin import plugin_to_full
from algoperf.frameworks.torch.runtime import (
    compile_time_s,
    device,
    is_finite,
    seed_everything,
    set_threads,
    step_rng,
    sync,
    to_float,
)
from algoperf.frameworks.torch.schedules import warmup_cosine
from algoperf.frameworks.torch.workload import TorchWorkload

FRAMEWORK = "torch"


BACKEND = ModuleBackend(FRAMEWORK, TorchWorkload, runtime, state, plugin_to_full)

__all__ = [
    "BACKEND",
    "FRAMEWORK",
    "TorchWorkload",
    "compile_time_s",
    "default_threads",
    "device",
    "is_finite",
    "plugin_to_full",
    "seed_everything",
    "set_threads",
    "step_rng",
    "sync",
    "to_float",
    "warmup_cosine",
]
