"""Cautious NAdamW (Liang et al. 2024, "Cautious Optimizers: Improving Training with One Line of
Code"), linear warmup + cosine decay to the workload's step hint: `optax.nadamw`'s update with
its coordinates zeroed where their sign disagrees with the gradient's. No library has it in both
frameworks: `CautiousNAdamW` below and jax.py's optax chain are the same rule (tested by
tests/test_update_parity.py):

    m <- b1 m + (1 - b1) g;  v <- b2 v + (1 - b2) g^2                        (t counts from 1)
    u = (b1 m / (1 - b1^(t+1)) + (1 - b1) g / (1 - b1^t)) / (sqrt(v / (1 - b2^t)) + eps)
    mask = [u * g > 0];  u <- u * mask * numel / (sum(mask) + 1)       (per tensor, the paper's code)
    p <- p - lr * (u + wd * p)                       (decoupled decay, not masked)

Without the mask this is optax.nadamw, and torch.optim.NAdam(momentum_decay=inf,
decoupled_weight_decay=True) as in submissions/nadamw.
"""

import torch

from algoperf.frameworks.torch import until_step_hint, warmup_cosine


class CautiousNAdamW(torch.optim.Optimizer):
    """optax.nadamw's rule (Nesterov Adam, decoupled decay) with the cautious mask."""

    def __init__(
        self,
        params,
        lr: float,
        betas: tuple[float, float] = (0.9, 0.999),
        eps: float = 1e-8,
        weight_decay: float = 0.0,
    ):
        if lr < 0 or eps < 0 or weight_decay < 0 or not all(0 <= b < 1 for b in betas):
            raise ValueError(f"invalid settings: lr={lr} betas={betas} eps={eps} wd={weight_decay}")
        super().__init__(params, {"lr": lr, "betas": betas, "eps": eps, "weight_decay": weight_decay})

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
                grad, state = p.grad, self.state[p]
                if not state:
                    state["step"] = 0
                    state["exp_avg"] = torch.zeros_like(p, memory_format=torch.preserve_format)
                    state["exp_avg_sq"] = torch.zeros_like(p, memory_format=torch.preserve_format)
                state["step"] += 1
                step, exp_avg, exp_avg_sq = state["step"], state["exp_avg"], state["exp_avg_sq"]
                exp_avg.lerp_(grad, 1.0 - beta1)
                exp_avg_sq.mul_(beta2).addcmul_(grad, grad, value=1.0 - beta2)
                # Nesterov: the momentum one step ahead plus the gradient's share, each bias-corrected.
                update = exp_avg * (beta1 / (1.0 - beta1 ** (step + 1)))
                update.add_(grad, alpha=(1.0 - beta1) / (1.0 - beta1**step))
                update.div_((exp_avg_sq / (1.0 - beta2**step)).sqrt_().add_(group["eps"]))
                mask = (update * grad > 0).to(update.dtype)
                update.mul_(mask.mul_(mask.numel() / (mask.sum() + 1)))
                update.add_(p, alpha=group["weight_decay"])
                p.sub_(update, alpha=group["lr"])
        return loss


def make_optimizer(params, hparams, workload):
    optimizer = CautiousNAdamW(
        params,
        lr=hparams.learning_rate,
        betas=(1.0 - hparams.one_minus_beta1, hparams.beta2),
        eps=1e-8,
        weight_decay=hparams.weight_decay,
    )
    warmup_steps = int(hparams.warmup_fraction * workload.step_hint)
    return optimizer, warmup_cosine(optimizer, warmup_steps, workload.step_hint)


# The schedule ends at the step hint: the trial ends there too (a zero learning rate gains nothing).
training_steps = until_step_hint
