"""SGD with Nesterov momentum and decoupled weight decay, linear warmup + cosine decay to the
workload's step hint. The same update rule as jax.py's optax chain:

    b <- mu * b + g;   u = g + mu * b                      (optax.trace(nesterov=True))
    p <- p - lr * (u + wd * p)                             (add_decayed_weights, then the lr)

Where the decay sits matters once there is momentum. `torch.optim.SGD(weight_decay=wd)` adds
wd * p to the gradient *before* the momentum (coupled L2, = optax.chain(add_decayed_weights,
sgd)), so the decay term is amplified by ~1 / (1 - mu) and tied to the gradient history. We use
the decoupled form instead, like every other baseline here (the weight_decay hyperparameter then
means the same thing as in AdamW: a shrink of lr * wd per step), by shrinking the parameters
ourselves before torch's momentum step.
"""

import torch

from algoperf.frameworks.torch import until_step_hint, warmup_cosine


class NesterovSGDW(torch.optim.SGD):
    """torch.optim.SGD(nesterov=True) plus decoupled weight decay p <- p * (1 - lr * wd)."""

    def __init__(self, params, lr: float, momentum: float, weight_decay: float = 0.0):
        if weight_decay < 0:
            raise ValueError(f"invalid weight_decay {weight_decay}")
        super().__init__(params, lr=lr, momentum=momentum, nesterov=True, weight_decay=0.0)
        for group in self.param_groups:
            group["decoupled_weight_decay"] = weight_decay

    @torch.no_grad()
    def step(self, closure=None):
        loss = None
        if closure is not None:  # gradients at the current parameters, before any decay
            with torch.enable_grad():
                loss = closure()
        for group in self.param_groups:
            decay = 1.0 - group["lr"] * group["decoupled_weight_decay"]
            for p in group["params"]:
                if p.grad is not None:
                    p.mul_(decay)
        super().step()
        return loss


def make_optimizer(params, hparams, workload):
    optimizer = NesterovSGDW(
        params,
        lr=hparams.learning_rate,
        momentum=1.0 - hparams.one_minus_momentum,
        weight_decay=hparams.weight_decay,
    )
    warmup_steps = int(hparams.warmup_fraction * workload.step_hint)
    return optimizer, warmup_cosine(optimizer, warmup_steps, workload.step_hint)


# The schedule ends at the step hint: the trial ends there too (a zero learning rate gains nothing).
training_steps = until_step_hint
