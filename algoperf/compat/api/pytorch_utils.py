"""AlgoPerf's `pytorch_utils`: the process's place in a (here single-process) PyTorch run."""

from __future__ import annotations

import torch

from algoperf.frameworks.torch.runtime import device


def pytorch_setup() -> tuple[bool, int, torch.device, int]:
    """(use_pytorch_ddp, rank, device, n_gpus). A trial of this harness is one process on one
    device, so DDP is off and the rank is 0 even where AlgoPerf would launch torchrun."""
    return False, 0, device(), torch.cuda.device_count()


def sync_ddp_time(time: float, device: torch.device) -> float:
    """The slowest rank's time under DDP; one process here, so the time itself."""
    del device
    return time
