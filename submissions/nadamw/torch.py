"""NAdamW: Adam with Nesterov momentum and decoupled weight decay, linear warmup + cosine decay
to the workload's step hint. The same update rule as `optax.nadamw` (see jax.py).
"""

import math

import torch

from algoperf.frameworks.torch import until_step_hint, warmup_cosine


def make_optimizer(params, hparams, workload):
    optimizer = torch.optim.NAdam(
        params,
        lr=hparams.learning_rate,
        betas=(1.0 - hparams.one_minus_beta1, hparams.beta2),
        eps=1e-8,
        weight_decay=hparams.weight_decay,
        decoupled_weight_decay=True,  # p <- p - lr * wd * p, as optax.nadamw
        # torch's NAdam (Dozat 2016) warms the momentum up: mu_t = b1 * (1 - 0.5 * 0.96**(t * psi)),
        # psi = momentum_decay (default 4e-3), so early steps use about half the momentum.
        # optax.nadamw uses mu_t = b1 at every step. psi = inf makes 0.96**(t * psi) exactly 0 for
        # t >= 1, hence mu_t = b1 and the product of the mu's = b1**t, which is optax's rule:
        #   u = [b1 * m_t / (1 - b1**(t+1)) + (1 - b1) * g_t / (1 - b1**t)] / (sqrt(v_hat) + eps)
        # (psi = 0 would not do: it gives mu_t = b1 / 2). tests/test_update_parity.py pins this.
        momentum_decay=math.inf,
    )
    warmup_steps = int(hparams.warmup_fraction * workload.step_hint)
    return optimizer, warmup_cosine(optimizer, warmup_steps, workload.step_hint)


# The schedule ends at the step hint: the trial ends there too (a zero learning rate gains nothing).
training_steps = until_step_hint
