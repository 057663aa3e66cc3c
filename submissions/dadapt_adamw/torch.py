"""D-Adaptation Adam (Defazio & Mishchenko 2023), learning-rate free: Adam whose step size d is a
lower bound on the distance to the solution; pytorch-optimizer's `DAdaptAdam` here,
`optax.contrib.dadapt_adamw` in jax.py. The same update rule in both (tests/test_update_parity.py).

learning_rate multiplies the estimated step size d (1 is the method's choice; see search_space.yaml),
under warmup + cosine decay. The libraries agree once torch's options are set to optax's fixed ones:
    bias_correction=True  optax always scales d * lr by sqrt(1 - b2^t) / (1 - b1^t);
    weight_decouple=True, fixed_decay=False
                          optax's decay is -wd * d * lr * p, decoupled and scaled, AdamW style
                          (the library's default adds wd * p to the gradient, before d's estimate);
    growth_rate=inf       optax's d is a running max, its growth never capped.
The scheduled lr sits inside d's estimate in both (d * lr weights the running sum s and the
numerator). The schedule starts one step into the warmup (lr / warmup_steps, not 0), in both files:
a first step at lr 0 leaves s = 0 and d = 0/0, NaN in optax (torch skips that step's update).

The d estimate lives in `optimizer.param_groups[i]["d"]` (also "numerator_weighted").
"""

import math
import warnings

from pytorch_optimizer import DAdaptAdam

from algoperf.frameworks.torch import until_step_hint, warmup_cosine


def make_optimizer(params, hparams, workload):
    optimizer = DAdaptAdam(
        params,
        lr=hparams.learning_rate,
        betas=(1.0 - hparams.one_minus_beta1, hparams.beta2),
        d0=hparams.d0,
        growth_rate=math.inf,
        weight_decay=hparams.weight_decay,
        weight_decouple=True,
        fixed_decay=False,
        bias_correction=True,
        eps=1e-8,
    )
    warmup_steps = int(hparams.warmup_fraction * workload.step_hint)
    scheduler = warmup_cosine(optimizer, warmup_steps, workload.step_hint)
    with warnings.catch_warnings():  # torch warns of a step before optimizer.step(): intended here
        warnings.simplefilter("ignore", UserWarning)
        scheduler.step()  # the first optimizer step gets the schedule's step 1 (see above)
    return optimizer, scheduler


def diagnostics(optimizer):
    """The step-size estimate d (the learning rate it adapts to, before the schedule's factor)."""
    return {"d": optimizer.param_groups[0]["d"]}


# The schedule ends at the step hint: the trial ends there too (a zero learning rate gains nothing).
training_steps = until_step_hint
