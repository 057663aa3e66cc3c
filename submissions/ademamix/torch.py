"""AdEMAMix (Pagliardini et al. 2024, "The AdEMAMix Optimizer: Better, Faster, Older") from
pytorch-optimizer, linear warmup + cosine decay to the workload's step hint. The same update rule
as `optax.contrib.ademamix` with the schedules in jax.py (tested by tests/test_update_parity.py):

    m1 <- b1 m1 + (1 - b1) g;  m2 <- b3_t m2 + (1 - b3_t) g;  v <- b2 v + (1 - b2) g^2
    p  <- p - lr * ((m1 / (1 - b1^t) + alpha_t m2) / (sqrt(v / (1 - b2^t)) + eps) + wd * p)

m2 is not bias-corrected (the paper lets the slow EMA fill slowly). As in the paper, alpha_t
rises linearly from 0 and b3_t from b1 (linearly in half-life) to their final values over
T = the step hint, the paper's T_alpha = T_beta3 = the length of training.
"""

from pytorch_optimizer import AdEMAMix

from algoperf.frameworks.torch import until_step_hint, warmup_cosine


def make_optimizer(params, hparams, workload):
    optimizer = AdEMAMix(
        params,
        lr=hparams.learning_rate,
        betas=(1.0 - hparams.one_minus_beta1, hparams.beta2, hparams.beta3),
        alpha=hparams.alpha,
        # Step t (from 1): alpha_t = alpha * min(t / T, 1) and b3_t the paper's half-life
        # interpolation exp(ln b1 ln b3 / ((1 - t/T) ln b3 + (t/T) ln b1)), capped at b3.
        t_alpha_beta3=workload.step_hint,
        eps=1e-8,
        weight_decay=hparams.weight_decay,
        weight_decouple=True,  # p *= 1 - lr * wd before the step, as optax's add_decayed_weights
        fixed_decay=False,  # decay scaled by the (scheduled) learning rate, as optax
    )
    warmup_steps = int(hparams.warmup_fraction * workload.step_hint)
    return optimizer, warmup_cosine(optimizer, warmup_steps, workload.step_hint)


# The schedule ends at the step hint: the trial ends there too (a zero learning rate gains nothing).
training_steps = until_step_hint
