"""Adan (Xie et al. 2022, Algorithm 1) written out as an optax chain, linear warmup + cosine decay
to the workload's step hint. The same update rule as torch.py (pytorch-optimizer's Adan, the
authors' reference code), tested by tests/test_update_parity.py.

Why not `optax.adan`: it takes the decays b = 1 - beta like the reference code, but copies the
paper's "(1 - beta_2)" weights literally, so it weights the gradient difference by 1 - b2 (0.08)
where the paper has 1 - beta_2 = b2 (0.92); no b2 reconciles both that weight and v's decay. Its
weight decay is also decoupled, p <- p - lr * (u + wd * p), not the paper's proximal step.

Algorithm 1 as the reference code runs it (zero-initialised, bias-corrected moments; no restart),
with decays b = 1 - beta, d_k = g_k - g_{k-1} (d_1 = 0) and step count k:
    m_k = b1 m_{k-1} + (1 - b1) g_k
    v_k = b2 v_{k-1} + (1 - b2) d_k
    n_k = b3 n_{k-1} + (1 - b3) (g_k + b2 d_k)^2
    u_k = (m_k / (1 - b1^k) + b2 v_k / (1 - b2^k)) / (sqrt(n_k / (1 - b3^k)) + eps)
    p_{k+1} = (p_k - lr_k u_k) / (1 + lr_k wd)
The last line is p_k - lr_k / (1 + lr_k wd) * (u_k + wd p_k): add_decayed_weights and a step size
of lr_k / (1 + lr_k wd), so the proximal decay is exact here too.
"""

from typing import NamedTuple

import jax
import jax.numpy as jnp
import optax

from algoperf.frameworks.jax import until_step_hint, warmup_cosine


class ScaleByAdanState(NamedTuple):
    count: jax.Array  # steps taken, int32
    m: optax.Updates  # EMA of gradients
    v: optax.Updates  # EMA of gradient differences
    n: optax.Updates  # EMA of (g + b2 d)^2
    previous_grad: optax.Updates


def scale_by_adan(b1: float, b2: float, b3: float, eps: float = 1e-8) -> optax.GradientTransformation:
    """u_k of the rule above, for decays b1, b2, b3."""

    def init_fn(params):
        zeros = lambda: optax.tree.zeros_like(params)  # noqa: E731
        return ScaleByAdanState(jnp.zeros([], jnp.int32), zeros(), zeros(), zeros(), zeros())

    def update_fn(grads, state, params=None):
        del params
        first = state.count == 0
        diff = jax.tree.map(
            lambda g, h: jnp.where(first, jnp.zeros_like(g), g - h), grads, state.previous_grad
        )
        m = optax.tree.update_moment(grads, state.m, b1, 1)
        v = optax.tree.update_moment(diff, state.v, b2, 1)
        nesterov = jax.tree.map(lambda g, d: g + b2 * d, grads, diff)
        n = optax.tree.update_moment_per_elem_norm(nesterov, state.n, b3, 2)
        count = optax.safe_increment(state.count)
        m_hat = optax.tree.bias_correction(m, b1, count)
        v_hat = optax.tree.bias_correction(v, b2, count)
        n_hat = optax.tree.bias_correction(n, b3, count)
        updates = jax.tree.map(lambda m_, v_, n_: (m_ + b2 * v_) / (jnp.sqrt(n_) + eps), m_hat, v_hat, n_hat)
        return updates, ScaleByAdanState(count, m, v, n, grads)

    return optax.GradientTransformation(init_fn, update_fn)


def make_optimizer(hparams, workload):
    warmup_steps = int(hparams.warmup_fraction * workload.step_hint)
    schedule = warmup_cosine(hparams.learning_rate, warmup_steps, workload.step_hint)
    weight_decay = hparams.weight_decay
    return optax.chain(
        scale_by_adan(
            1.0 - hparams.one_minus_beta1, 1.0 - hparams.one_minus_beta2, 1.0 - hparams.one_minus_beta3
        ),
        optax.add_decayed_weights(weight_decay),
        # The proximal step: -lr_k / (1 + lr_k wd) times (u_k + wd p_k).
        optax.scale_by_schedule(lambda count: -schedule(count) / (1.0 + schedule(count) * weight_decay)),
    )


# The schedule ends at the step hint: the trial ends there too (a zero learning rate gains nothing).
training_steps = until_step_hint
