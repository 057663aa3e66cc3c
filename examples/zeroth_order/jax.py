"""Zeroth-order momentum SGD (ZO-SGD with DeepZero's randomized gradient estimate, Chen et al.,
ICLR 2024) in JAX: an optax GradientTransformationExtraArgs written by hand. The same rule as
torch.py; the two frameworks draw different random directions, so their runs differ.

The harness's forward-only step hands `update` zeros for the gradient, `value` = L(theta) on
this batch and `value_fn` (params -> L on this batch); the update estimates

    g_hat = (1/q) sum_i [(value_fn(theta + mu u_i) - value) / mu] u_i,   u_i ~ N(0, I)

over all parameters jointly (q more forward passes, a lax.scan so q is compiled once), then
takes a momentum-SGD step. The PRNG key lives in the optimizer state. See torch.py and
README.md for why this estimate and what DeepZero adds.
"""

from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
import optax

from algoperf.frameworks.jax import until_step_hint, warmup_cosine

step_kind = "forward_only"


class ZerothOrderState(NamedTuple):
    count: jax.Array
    key: jax.Array  # raw uint32 key data (plain arrays copy and donate like any other leaf)
    momentum: optax.Params
    estimate_norm: jax.Array  # |g_hat| of the last step
    derivative_rms: jax.Array  # RMS of the last step's finite differences: estimates |grad L|


def gaussian_like(key, params):
    leaves, treedef = jax.tree.flatten(params)
    keys = jax.random.split(key, len(leaves))
    return treedef.unflatten(
        [jax.random.normal(k, p.shape, p.dtype) for k, p in zip(keys, leaves, strict=True)]
    )


def zeroth_order_sgd(learning_rate, momentum, mu, q, seed):
    """Momentum SGD on the randomized gradient estimate; `learning_rate` is a schedule."""

    def init(params):
        return ZerothOrderState(
            count=jnp.zeros([], jnp.int32),
            key=jax.random.PRNGKey(seed),
            momentum=jax.tree.map(jnp.zeros_like, params),
            estimate_norm=jnp.zeros([], jnp.float32),
            derivative_rms=jnp.zeros([], jnp.float32),
        )

    def update(updates, state, params, *, value_fn, value, **extra_args):
        del updates  # zeros: the forward-only step takes no gradient
        key, draw = jax.random.split(state.key)

        def one_direction(estimate, direction_key):
            u = gaussian_like(direction_key, params)
            perturbed = jax.tree.map(lambda p, d: p + mu * d, params, u)
            derivative = (value_fn(perturbed) - value) / mu
            estimate = jax.tree.map(lambda g, d: g + (derivative / q) * d, estimate, u)
            return estimate, derivative

        zeros = jax.tree.map(jnp.zeros_like, params)
        estimate, derivatives = jax.lax.scan(one_direction, zeros, jax.random.split(draw, q))
        buffer = jax.tree.map(lambda m, g: momentum * m + g, state.momentum, estimate)
        lr = learning_rate(state.count)
        new_updates = jax.tree.map(lambda m: -lr * m, buffer)
        new_state = ZerothOrderState(
            count=state.count + 1,
            key=key,
            momentum=buffer,
            estimate_norm=optax.tree.norm(estimate),
            derivative_rms=jnp.sqrt(jnp.mean(jnp.square(derivatives))),
        )
        return new_updates, new_state

    return optax.GradientTransformationExtraArgs(init, update)


def make_optimizer(hparams, workload):
    warmup_steps = int(hparams.warmup_fraction * workload.step_hint)
    return zeroth_order_sgd(
        warmup_cosine(hparams.learning_rate, warmup_steps, workload.step_hint),
        momentum=hparams.momentum,
        mu=hparams.mu,
        q=int(hparams.q),
        # make_optimizer gets no rng; numpy's global generator is seeded per trial by the harness.
        seed=np.random.randint(2**31),
    )


def diagnostics(opt_state):
    """|g_hat| of the last step, and the RMS of its finite differences (which estimates |grad L|)."""
    return {
        "estimate_norm": float(opt_state.estimate_norm),
        "directional_derivative_rms": float(opt_state.derivative_rms),
    }


training_steps = until_step_hint
