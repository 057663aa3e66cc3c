"""Learning-rate schedules for JAX submissions."""

from __future__ import annotations

import optax


def warmup_cosine(
    peak_lr: float, warmup_steps: int, total_steps: int, final_lr_factor: float = 0.0
) -> optax.Schedule:
    """Linear warmup from 0 to `peak_lr` over `warmup_steps`, then cosine decay to
    `final_lr_factor` × `peak_lr` at `total_steps` (held there afterwards).

    Same schedule, step for step, as `algoperf.frameworks.torch.warmup_cosine` (whose LambdaLR
    gives the first optimizer step the factor at step 0, as optax's count 0 does here).
    """
    warmup_steps = max(1, int(warmup_steps))
    decay_steps = max(1, int(total_steps) - warmup_steps)
    return optax.warmup_cosine_decay_schedule(
        init_value=0.0,
        peak_value=peak_lr,
        warmup_steps=warmup_steps,
        decay_steps=warmup_steps + decay_steps,
        end_value=final_lr_factor * peak_lr,
    )
