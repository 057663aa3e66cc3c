"""AdamW (decoupled weight decay) with linear warmup and cosine decay to the workload's step hint.

The same update as torch.py: optax.adamw scales the weight decay by the learning rate, as
torch.optim.AdamW does (p <- p - lr * (adam_direction + weight_decay * p)).
"""

import optax

from algoperf.frameworks.jax import until_step_hint, warmup_cosine


def make_optimizer(hparams, workload):
    warmup_steps = int(hparams.warmup_fraction * workload.step_hint)
    return optax.adamw(
        learning_rate=warmup_cosine(hparams.learning_rate, warmup_steps, workload.step_hint),
        b1=1.0 - hparams.one_minus_beta1,
        b2=hparams.beta2,
        eps=1e-8,
        weight_decay=hparams.weight_decay,
    )


# The schedule ends at the step hint: the trial ends there too (a zero learning rate gains nothing).
training_steps = until_step_hint
