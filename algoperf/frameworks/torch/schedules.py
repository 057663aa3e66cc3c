"""Learning-rate schedules for torch submissions."""

from __future__ import annotations

import numpy as np
import torch


def warmup_cosine(
    optimizer: torch.optim.Optimizer,
    warmup_steps: int,
    total_steps: int,
    final_lr_factor: float = 0.0,
) -> torch.optim.lr_scheduler.LambdaLR:
    """Linear warmup from 0 to the base LR over `warmup_steps`, then cosine decay to
    `final_lr_factor` × base LR at `total_steps` (held there afterwards).

    Same schedule as `algoperf.frameworks.jax.warmup_cosine` (optax.warmup_cosine_decay_schedule).
    """
    warmup_steps = max(1, int(warmup_steps))
    decay_steps = max(1, int(total_steps) - warmup_steps)

    def factor(step: int) -> float:
        if step < warmup_steps:
            return step / warmup_steps
        progress = min(1.0, (step - warmup_steps) / decay_steps)
        return final_lr_factor + (1 - final_lr_factor) * 0.5 * (1 + np.cos(np.pi * progress))

    return torch.optim.lr_scheduler.LambdaLR(optimizer, factor)
