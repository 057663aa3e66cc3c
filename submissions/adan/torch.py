"""Adan (Xie et al. 2022, "Adan: Adaptive Nesterov Momentum Algorithm", Algorithm 1) from
pytorch-optimizer, linear warmup + cosine decay to the workload's step hint. The same update rule,
proximal weight decay included, as the optax transformation written out in jax.py (tested by
tests/test_update_parity.py); `optax.adan` is a different rule (see jax.py).

pytorch-optimizer's `Adan` is the authors' reference code (github.com/sail-sg/Adan), which is
Algorithm 1 with its betas written as decays (b = 1 - the paper's beta) and zero-initialised,
bias-corrected moments in place of m_0 = g_0, n_0 = g_0^2; the restart condition is left out.
"""

from pytorch_optimizer import Adan

from algoperf.frameworks.torch import until_step_hint, warmup_cosine


def make_optimizer(params, hparams, workload):
    optimizer = Adan(
        params,
        lr=hparams.learning_rate,
        # Decays; the search space tunes the paper's betas (1 - decay, around 0.02, 0.08, 0.01).
        betas=(1.0 - hparams.one_minus_beta1, 1.0 - hparams.one_minus_beta2, 1.0 - hparams.one_minus_beta3),
        eps=1e-8,
        weight_decay=hparams.weight_decay,
        # False: the paper's proximal decay p <- (p - lr * u) / (1 + lr * wd), after the step.
        weight_decouple=False,
        max_grad_norm=0.0,  # the harness clips (grad_clip_norm) when a search space asks
    )
    warmup_steps = int(hparams.warmup_fraction * workload.step_hint)
    return optimizer, warmup_cosine(optimizer, warmup_steps, workload.step_hint)


# The schedule ends at the step hint: the trial ends there too (a zero learning rate gains nothing).
training_steps = until_step_hint
