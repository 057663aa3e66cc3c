"""Cautious NAdamW (Liang et al. 2024) as an optax chain, linear warmup + cosine decay to the
workload's step hint: optax.nadamw's chain with the cautious mask between the Nesterov Adam
direction and the weight decay. The same update rule as torch.py (tested)."""

import jax
import optax

from algoperf.frameworks.jax import until_step_hint, warmup_cosine


def cautious(inner: optax.GradientTransformation) -> optax.GradientTransformation:
    """`inner`'s update with the coordinates whose sign disagrees with the gradient's zeroed, and
    the rest scaled by numel / (kept + 1) per tensor (the paper's code), so the update keeps its
    size on average. It wraps `inner` because a later link of a chain no longer sees the gradient."""

    def mask(u, g):
        kept = (u * g > 0).astype(u.dtype)
        return u * (kept * (kept.size / (kept.sum() + 1)))

    def update_fn(grads, state, params=None):
        updates, state = inner.update(grads, state, params)
        return jax.tree.map(mask, updates, grads), state

    return optax.GradientTransformation(inner.init, update_fn)


def make_optimizer(hparams, workload):
    warmup_steps = int(hparams.warmup_fraction * workload.step_hint)
    schedule = warmup_cosine(hparams.learning_rate, warmup_steps, workload.step_hint)
    # optax.nadamw is chain(scale_by_adam(nesterov=True), add_decayed_weights, scale_by_learning_rate):
    # the mask goes on the Adam direction only, so the weight decay is never masked.
    return optax.chain(
        cautious(
            optax.scale_by_adam(b1=1.0 - hparams.one_minus_beta1, b2=hparams.beta2, eps=1e-8, nesterov=True)
        ),
        optax.add_decayed_weights(hparams.weight_decay),
        optax.scale_by_learning_rate(schedule),
    )


# The schedule ends at the step hint: the trial ends there too (a zero learning rate gains nothing).
training_steps = until_step_hint
