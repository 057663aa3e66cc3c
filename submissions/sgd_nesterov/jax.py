"""SGD with Nesterov momentum and decoupled weight decay in optax, linear warmup + cosine decay
to the workload's step hint. The same update rule as torch.py.

`optax.sgd` has no weight decay; where `add_decayed_weights` goes decides the rule. Before the
momentum (`chain(add_decayed_weights, sgd)`) it is coupled L2, what torch.optim.SGD's
weight_decay does; after it (below) the decay is decoupled: p <- p - lr * (u + wd * p).
"""

import optax

from algoperf.frameworks.jax import until_step_hint, warmup_cosine


def make_optimizer(hparams, workload):
    warmup_steps = int(hparams.warmup_fraction * workload.step_hint)
    schedule = warmup_cosine(hparams.learning_rate, warmup_steps, workload.step_hint)
    return optax.chain(
        optax.trace(decay=1.0 - hparams.one_minus_momentum, nesterov=True),
        optax.add_decayed_weights(hparams.weight_decay),
        optax.scale_by_learning_rate(schedule),
    )


# The schedule ends at the step hint: the trial ends there too (a zero learning rate gains nothing).
training_steps = until_step_hint
