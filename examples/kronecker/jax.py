"""Kronecker-factored preconditioning from rank-1 factors (after MKOR), in JAX: the same rule as
torch.py, with the dense layers' inputs and output gradients captured by the standard step.

`capture_layers = True` asks the harness's compiled step for `layer_inputs` and
`layer_output_grads` ({dense layer name: array}), which it gets by intercepting flax's Dense
calls; the transformation below takes them as keyword arguments of its update (an optax
GradientTransformationExtraArgs). See torch.py for the rule and why the damped factors are
inverted every `inverse_every` steps.
"""

from typing import NamedTuple

import jax
import jax.numpy as jnp
import optax

from algoperf.frameworks.jax import flatten_params, unflatten_params, until_step_hint, warmup_cosine

capture_layers = True


class Factors(NamedTuple):
    A: jax.Array  # fan_in x fan_in
    G: jax.Array  # fan_out x fan_out
    A_inv: jax.Array
    G_inv: jax.Array


class KroneckerState(NamedTuple):
    count: jax.Array
    momentum: optax.Params
    factors: dict  # {dense layer name: Factors}


def damped_inverse(factor, damping):
    """(F + lambda I)^-1 with lambda = damping * the mean eigenvalue of F (its trace / n)."""
    n = factor.shape[0]
    lam = damping * jnp.trace(factor) / n + 1e-12
    return jnp.linalg.inv(factor + lam * jnp.eye(n, dtype=factor.dtype))


def kronecker_rank1(learning_rate, momentum, weight_decay, gamma, damping, inverse_every, param_info):
    """Momentum SGD whose dense-layer gradients are preconditioned by rank-1 Kronecker factors.
    `param_info`: the workload's {name: ParamInfo} (layouts: the gradient's matrix view)."""

    def dense_layers(params):
        return [n[: -len(".weight")] for n in flatten_params(params) if n.endswith(".weight")]

    def init(params):
        factors = {}
        for name in dense_layers(params):
            info = param_info[name + ".weight"]
            if info.is_matrix:
                eye_in, eye_out = jnp.eye(info.fan_in), jnp.eye(info.fan_out)
                factors[name] = Factors(eye_in, eye_out, eye_in, eye_out)
        return KroneckerState(jnp.zeros([], jnp.int32), jax.tree.map(jnp.zeros_like, params), factors)

    def update(updates, state, params, *, layer_inputs, layer_output_grads, **extra_args):
        grads = flatten_params(updates)
        refresh = state.count % inverse_every == 0
        factors = dict(state.factors)
        for layer, f in state.factors.items():
            if layer not in layer_inputs:  # a layer this forward pass did not call
                continue
            info = param_info[layer + ".weight"]
            x, dy = layer_inputs[layer], layer_output_grads[layer]
            a = x.reshape(-1, x.shape[-1]).mean(0)
            g = dy.reshape(-1, dy.shape[-1]).sum(0)
            A = gamma * f.A + (1.0 - gamma) * jnp.outer(a, a)
            G = gamma * f.G + (1.0 - gamma) * jnp.outer(g, g)
            A_inv, G_inv = jax.lax.cond(
                refresh,
                lambda A, G, *_: (damped_inverse(A, damping), damped_inverse(G, damping)),
                lambda A, G, A_inv, G_inv: (A_inv, G_inv),
                A,
                G,
                f.A_inv,
                f.G_inv,
            )
            grad = info.as_matrix(grads[layer + ".weight"])
            direction = G_inv @ grad @ A_inv
            direction = direction * (jnp.linalg.norm(grad) / (jnp.linalg.norm(direction) + 1e-12))
            grads[layer + ".weight"] = info.from_matrix(direction)
            factors[layer] = Factors(A, G, A_inv, G_inv)
        directions = unflatten_params(grads, updates)
        buffer = jax.tree.map(lambda m, d: momentum * m + d, state.momentum, directions)
        lr = learning_rate(state.count)
        new_updates = jax.tree.map(lambda m, p: -lr * (m + weight_decay * p), buffer, params)
        return new_updates, KroneckerState(state.count + 1, buffer, factors)

    return optax.GradientTransformationExtraArgs(init, update)


def make_optimizer(hparams, workload):
    warmup_steps = int(hparams.warmup_fraction * workload.step_hint)
    return kronecker_rank1(
        warmup_cosine(hparams.learning_rate, warmup_steps, workload.step_hint),
        momentum=1.0 - hparams.one_minus_momentum,
        weight_decay=hparams.weight_decay,
        gamma=hparams.factor_decay,
        damping=hparams.damping,
        inverse_every=int(hparams.inverse_every),
        param_info=workload.param_info,
    )


def diagnostics(opt_state):
    """The largest condition number of the damped input factors' inverses (1: plain momentum)."""
    worst = 1.0
    for f in opt_state.factors.values():
        eigenvalues = jnp.linalg.eigvalsh(f.A_inv)
        worst = max(worst, float(eigenvalues[-1] / eigenvalues[0]))
    return {"max_input_condition": worst}


training_steps = until_step_hint
