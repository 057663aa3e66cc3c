"""LAMB (You et al. 2020, "Large Batch Optimization for Deep Learning") with linear warmup +
cosine decay to the workload's step hint. The same update rule as `optax.lamb` (see jax.py).

Why not pytorch-optimizer's `Lamb`: its rule differs from optax.lamb in three ways, none of
which it can switch off:
  - no bias correction of the moments (it follows version 3 of the paper, optax corrects both);
  - the weight norm in the trust ratio is clipped at 10 (`Lamb.clamp`), optax does not clip;
  - the trust ratio is |p| / (|u| + eps), optax's is |p| / |u| (1 where either norm is 0).
Without bias correction the Adam direction of the first steps is scaled by about
(1 - b1^t) / sqrt(1 - b2^t) (3.2x at t = 1 for b1 = 0.9, b2 = 0.999), which shifts its balance
against the wd * p term inside the trust ratio: the same hyperparameters would not mean the same
optimizer in both frameworks. `Lamb` below is optax's rule:

    m <- b1 m + (1 - b1) g;  v <- b2 v + (1 - b2) g^2                      (scale_by_adam)
    u = m / (1 - b1^t) / (sqrt(v / (1 - b2^t)) + eps) + wd * p             (add_decayed_weights)
    p <- p - lr * (|p| / |u|) * u,   the ratio per tensor, 1 if |p| or |u| is 0  (trust ratio)
"""

import torch

from algoperf.frameworks.torch import until_step_hint, warmup_cosine


class Lamb(torch.optim.Optimizer):
    """optax.lamb's update rule as a torch optimizer (per-tensor trust ratio, bias-corrected)."""

    def __init__(
        self,
        params,
        lr: float,
        betas: tuple[float, float] = (0.9, 0.999),
        eps: float = 1e-6,
        weight_decay: float = 0.0,
    ):
        if lr < 0 or eps < 0 or weight_decay < 0 or not all(0 <= b < 1 for b in betas):
            raise ValueError(f"invalid LAMB settings: lr={lr} betas={betas} eps={eps} wd={weight_decay}")
        defaults = {"lr": lr, "betas": betas, "eps": eps, "weight_decay": weight_decay}
        super().__init__(params, defaults)

    @torch.no_grad()
    def step(self, closure=None):
        loss = None
        if closure is not None:
            with torch.enable_grad():
                loss = closure()
        for group in self.param_groups:
            beta1, beta2 = group["betas"]
            for p in group["params"]:
                if p.grad is None:
                    continue
                state = self.state[p]
                if not state:
                    state["step"] = 0
                    state["exp_avg"] = torch.zeros_like(p, memory_format=torch.preserve_format)
                    state["exp_avg_sq"] = torch.zeros_like(p, memory_format=torch.preserve_format)
                state["step"] += 1
                step, exp_avg, exp_avg_sq = state["step"], state["exp_avg"], state["exp_avg_sq"]
                exp_avg.lerp_(p.grad, 1.0 - beta1)
                exp_avg_sq.mul_(beta2).addcmul_(p.grad, p.grad, value=1.0 - beta2)
                denominator = (exp_avg_sq / (1.0 - beta2**step)).sqrt_().add_(group["eps"])
                update = (exp_avg / (1.0 - beta1**step)).div_(denominator)
                update.add_(p, alpha=group["weight_decay"])
                param_norm = torch.linalg.vector_norm(p)
                update_norm = torch.linalg.vector_norm(update)
                trust_ratio = torch.where(
                    (param_norm == 0) | (update_norm == 0), 1.0, param_norm / update_norm
                )
                p.sub_(update.mul_(trust_ratio * group["lr"]))
        return loss


def make_optimizer(params, hparams, workload):
    optimizer = Lamb(
        params,
        lr=hparams.learning_rate,
        betas=(1.0 - hparams.one_minus_beta1, hparams.beta2),
        eps=1e-6,  # optax.lamb's default
        weight_decay=hparams.weight_decay,
    )
    warmup_steps = int(hparams.warmup_fraction * workload.step_hint)
    return optimizer, warmup_cosine(optimizer, warmup_steps, workload.step_hint)


# The schedule ends at the step hint: the trial ends there too (a zero learning rate gains nothing).
training_steps = until_step_hint
