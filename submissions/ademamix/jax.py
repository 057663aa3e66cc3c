"""AdEMAMix in optax (`optax.contrib.ademamix`), linear warmup + cosine decay to the workload's
step hint. The same update rule as torch.py (pytorch-optimizer's AdEMAMix), alpha and b3 warmups
included (tested by tests/test_update_parity.py)."""

import math

import jax.numpy as jnp
import optax

from algoperf.frameworks.jax import until_step_hint, warmup_cosine


def alpha_and_beta3_warmups(alpha, beta1, beta3, warmup_steps):
    """pytorch-optimizer's (and the paper's) alpha and b3 schedules as optax schedules.

    optax evaluates them at its 0-based count, torch at its step t = count + 1:
        alpha_t = alpha * min(t / T, 1)
        b3_t = min(exp(ln b1 ln b3 / ((1 - t/T) ln b3 + (t/T) ln b1)), b3)
    (b3_t moves the half-life ln(0.5) / ln(b) linearly from b1's to b3's.)
    """
    log_b1, log_b3 = math.log(beta1), math.log(beta3)

    def alpha_schedule(count):
        return jnp.minimum((count + 1) * alpha / warmup_steps, alpha)

    def beta3_schedule(count):
        s = (count + 1) / warmup_steps
        return jnp.minimum(jnp.exp(log_b1 * log_b3 / ((1.0 - s) * log_b3 + s * log_b1)), beta3)

    return alpha_schedule, beta3_schedule


def make_optimizer(hparams, workload):
    warmup_steps = int(hparams.warmup_fraction * workload.step_hint)
    schedule = warmup_cosine(hparams.learning_rate, warmup_steps, workload.step_hint)
    beta1 = 1.0 - hparams.one_minus_beta1
    alpha, beta3 = alpha_and_beta3_warmups(hparams.alpha, beta1, hparams.beta3, workload.step_hint)
    return optax.contrib.ademamix(
        schedule,
        b1=beta1,
        b2=hparams.beta2,
        b3=beta3,
        alpha=alpha,
        eps=1e-8,
        weight_decay=hparams.weight_decay,  # p <- p - lr * (u + wd * p): decoupled, as torch.py
    )


# The schedule ends at the step hint: the trial ends there too (a zero learning rate gains nothing).
training_steps = until_step_hint
