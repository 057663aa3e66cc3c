"""SAM (Foret et al. 2021, sharpness-aware minimisation) around AdamW, linear warmup + cosine decay
of AdamW's learning rate to the workload's step hint: pytorch-optimizer's `SAM` here,
`optax.contrib.sam` in jax.py. The same update rule in both (tested):

    e = rho g / (|g| + 1e-12)       g the gradient at w, |g| its global norm over every parameter
    w <- AdamW(w, grad L(w + e))    the base step from the unperturbed w, decay on w

Not adaptive (ASAM's |w| scaling is off in both); |g| + 1e-12 in both (jax.py gives optax's
normalize torch's eps). Each step takes two gradients (the harness's closure recomputes forward
and backward at w + e), so a step costs about twice an AdamW step.

Measured on qm9, whose output layer starts at zero: with rho >= 0.03 and lr >= 3e-3 SAM stayed at
the constant predictor (4 of 4 torch trials; both frameworks alike on the same batches), while a
small random head trains. While the head is smaller than the ascent step e, the gradient at w + e
drives the layers below by the head's ascent direction, the opposite of where the head goes, and
Adam's normalisation makes that a full step. Hence the small rho range.
"""

import torch
from pytorch_optimizer import SAM

from algoperf.frameworks.torch import until_step_hint, warmup_cosine


def make_optimizer(params, hparams, workload):
    optimizer = SAM(
        params,
        base_optimizer=torch.optim.AdamW,
        rho=hparams.rho,
        adaptive=False,
        # the base optimizer's settings:
        lr=hparams.learning_rate,
        betas=(1.0 - hparams.one_minus_beta1, hparams.beta2),
        eps=1e-8,
        weight_decay=hparams.weight_decay,
    )
    # SAM shares its param_groups with the base AdamW, so the schedule sets AdamW's lr.
    warmup_steps = int(hparams.warmup_fraction * workload.step_hint)
    return optimizer, warmup_cosine(optimizer, warmup_steps, workload.step_hint)


# The harness calls optimizer.step(closure) after the first backward; the closure recomputes the
# gradient at the perturbed weights.
step_kind = "closure"

# The schedule ends at the step hint: the trial ends there too (a zero learning rate gains nothing).
training_steps = until_step_hint
