"""Prodigy in optax (`optax.contrib.prodigy`), learning-rate free, its lr multiplier under linear
warmup + cosine decay to the workload's step hint. The same update rule as torch.py (see there).
The d estimate lives in the optimizer state's `ProdigyState.estim_lr` field."""

import optax

from algoperf.frameworks.jax import until_step_hint, warmup_cosine


def make_optimizer(hparams, workload):
    warmup_steps = int(hparams.warmup_fraction * workload.step_hint)
    schedule = warmup_cosine(hparams.learning_rate, warmup_steps, workload.step_hint)
    return optax.contrib.prodigy(
        schedule,
        betas=(1.0 - hparams.one_minus_beta1, hparams.beta2),
        beta3=None,  # sqrt(beta2)
        eps=1e-8,
        estim_lr0=hparams.d0,
        estim_lr_coef=1.0,
        weight_decay=hparams.weight_decay,
        # With lr 0 at the schedule's first step, s would stay 0 and d = 0/0 = NaN (see torch.py).
        safeguard_warmup=True,
    )


def diagnostics(opt_state):
    """The step-size estimate d (the learning rate it adapts to, before the schedule's factor)."""
    return {"d": optax.tree_utils.tree_get(opt_state, "estim_lr")}


# The schedule ends at the step hint: the trial ends there too (a zero learning rate gains nothing).
training_steps = until_step_hint
