"""Prodigy (Mishchenko & Defazio 2023), learning-rate free: Adam whose step size d is estimated from
the distance travelled; pytorch-optimizer's `Prodigy` here, `optax.contrib.prodigy` in jax.py.
The same update rule in both with the settings below (tests/test_update_parity.py).

learning_rate multiplies the estimated step size d (1 is the method's choice; see search_space.yaml),
under warmup + cosine decay. The libraries agree once torch's options are set to optax's fixed ones:
    bias_correction=True  optax always scales d * lr by sqrt(1 - b2^t) / (1 - b1^t);
    weight_decouple=True, fixed_decay=False
                          optax's decay is -wd * d * lr * p, decoupled and scaled, AdamW style;
    growth_rate=inf       optax's d is a running max, its growth never capped;
    beta3=None            sqrt(beta2) in both, for the running averages behind d.
Both put the scheduled lr inside d's estimate (numerator and, unless safeguarded, the running sum
s). safeguard_warmup=True, as the authors advise with warmup, keeps lr out of s: the harness's
schedule gives the first step lr 0, which would leave s = 0 and d = 0/0 (NaN in optax; torch skips).

Measured (300 steps on a quadratic, d0 = 1e-6, weight_decay 0.05): the two d's differ by up to 3%
while d is small, 0.3% once it settles, though the parameters agree to an ulp per step. d's
numerator <g, p0 - p> sums displacements of a few float32 ulps, and torch decays by the float32
factor 1 - wd * d * lr, which rounds in steps of 6e-8 (wd * d * lr ~ 1e-7 early), then adds the
Adam step, where optax adds decay and step and rounds once. With weight_decay 0 they agree to 1e-4.

The d estimate lives in `optimizer.param_groups[i]["d"]` (also "d_max", "d_hat", "d_numerator").
"""

import math

from pytorch_optimizer import Prodigy

from algoperf.frameworks.torch import until_step_hint, warmup_cosine


def make_optimizer(params, hparams, workload):
    optimizer = Prodigy(
        params,
        lr=hparams.learning_rate,
        betas=(1.0 - hparams.one_minus_beta1, hparams.beta2),
        beta3=None,
        d0=hparams.d0,
        d_coef=1.0,
        growth_rate=math.inf,
        weight_decay=hparams.weight_decay,
        weight_decouple=True,
        fixed_decay=False,
        bias_correction=True,
        safeguard_warmup=True,
        eps=1e-8,
    )
    warmup_steps = int(hparams.warmup_fraction * workload.step_hint)
    return optimizer, warmup_cosine(optimizer, warmup_steps, workload.step_hint)


def diagnostics(optimizer):
    """The step-size estimate d (the learning rate it adapts to, before the schedule's factor)."""
    return {"d": optimizer.param_groups[0]["d"]}


# The schedule ends at the step hint: the trial ends there too (a zero learning rate gains nothing).
training_steps = until_step_hint
