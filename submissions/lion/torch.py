"""Lion (Chen et al. 2023, "Symbolic Discovery of Optimization Algorithms") from
pytorch-optimizer, linear warmup + cosine decay to the workload's step hint.

pytorch-optimizer's Lion is the same rule as `optax.lion` (see jax.py), checked line by line
and pinned by tests/test_update_parity.py:
    update = sign(b1 * m + (1 - b1) * g);  m <- b2 * m + (1 - b2) * g
    p <- p - lr * (update + wd * p)        (decoupled decay, scaled by the scheduled lr)
"""

from pytorch_optimizer import Lion

from algoperf.frameworks.torch import until_step_hint, warmup_cosine


def make_optimizer(params, hparams, workload):
    optimizer = Lion(
        params,
        lr=hparams.learning_rate,
        betas=(1.0 - hparams.one_minus_beta1, hparams.beta2),
        weight_decay=hparams.weight_decay,
        weight_decouple=True,  # p *= 1 - lr * wd before the signed step, as optax.lion
        fixed_decay=False,  # decay scaled by the (scheduled) learning rate, as optax.lion
    )
    warmup_steps = int(hparams.warmup_fraction * workload.step_hint)
    return optimizer, warmup_cosine(optimizer, warmup_steps, workload.step_hint)


# The schedule ends at the step hint: the trial ends there too (a zero learning rate gains nothing).
training_steps = until_step_hint
