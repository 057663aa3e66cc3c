"""The torch backend (see algoperf/frameworks/backend.py). Only this package, and workloads
and submissions written for torch, import torch.

Workloads import `TorchWorkload`, submissions `warmup_cosine` and `until_step_hint`; the
harness asks `BACKEND` (or `algoperf.frameworks.load_backend("torch")`).
"""

from __future__ import annotations

from algoperf.frameworks.backend import ModuleBackend
from algoperf.frameworks.torch import runtime, state
from algoperf.frameworks.torch.plugin import plugin_to_full
from algoperf.frameworks.torch.schedules import warmup_cosine
from algoperf.frameworks.torch.workload import TorchWorkload
from algoperf.spec import until_step_hint

BACKEND = ModuleBackend("torch", TorchWorkload, runtime, state, plugin_to_full)

__all__ = ["BACKEND", "TorchWorkload", "until_step_hint", "warmup_cosine"]
