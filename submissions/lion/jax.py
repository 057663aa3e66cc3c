"""Lion in optax (`optax.lion`), linear warmup + cosine decay to the workload's step hint.
The same update rule as torch.py (pytorch-optimizer's Lion)."""

import optax

from algoperf.frameworks.jax import until_step_hint, warmup_cosine


def make_optimizer(hparams, workload):
    warmup_steps = int(hparams.warmup_fraction * workload.step_hint)
    schedule = warmup_cosine(hparams.learning_rate, warmup_steps, workload.step_hint)
    return optax.lion(
        schedule,
        b1=1.0 - hparams.one_minus_beta1,
        b2=hparams.beta2,
        weight_decay=hparams.weight_decay,
    )


# The schedule ends at the step hint: the trial ends there too (a zero learning rate gains nothing).
training_steps = until_step_hint
