"""Muon by parameter role in optax (`optax.contrib.muon`): Muon for the hidden layers' weight
matrices (conv kernels included), its NAdamW side for the rest, each under its own warmup + cosine
schedule. The same update rule as torch.py (tested; the rule is written out there)."""

import math

import jax
import jax.numpy as jnp
import optax
from optax.contrib import MuonDimensionNumbers, MuonState

from algoperf.frameworks.jax import unflatten_params, until_step_hint, warmup_cosine
from algoperf.spec import ParamRole

NS_COEFFS = (3.4445, -4.7750, 2.0315)  # optax's default (Jordan's quintic)
NS_STEPS = 5
EPS = 1e-8


def dimension_numbers(info):
    """Muon's view of a hidden matrix, None (the Adam side) for every other parameter.

    optax transposes the reduction axes, in the order given, then the output axes to the end and
    flattens them: listing fan_in_axes in ParamInfo's (torch) order makes its (fan_in, fan_out)
    matrix the transpose of `info.as_matrix`, the matrix torch.py orthogonalises; its
    sqrt(max(1, fan_out / fan_in)) scale reads the same products."""
    if not (info.is_matrix and info.role is ParamRole.HIDDEN):
        return None
    return MuonDimensionNumbers(reduction_axis=info.fan_in_axes, output_axis=info.fan_out_axes)


def make_optimizer(hparams, workload):
    dims = {name: dimension_numbers(info) for name, info in workload.param_info.items()}
    warmup_steps = int(hparams.warmup_fraction * workload.step_hint)
    beta = 1.0 - hparams.one_minus_beta1
    return optax.contrib.muon(
        learning_rate=warmup_cosine(hparams.learning_rate, warmup_steps, workload.step_hint),
        ns_coeffs=NS_COEFFS,
        ns_steps=NS_STEPS,
        beta=beta,
        eps=EPS,
        weight_decay=hparams.weight_decay,
        nesterov=True,
        adam_b1=beta,
        adam_b2=hparams.beta2,
        adam_weight_decay=hparams.weight_decay,
        adam_learning_rate=warmup_cosine(hparams.adam_learning_rate, warmup_steps, workload.step_hint),
        muon_weight_dimension_numbers=lambda params: unflatten_params(dims, params),
        consistent_rms=None,  # Jordan's width scale sqrt(max(1, fan_out / fan_in)), as torch.py
    )


def _rms(arrays):
    arrays = list(arrays)
    if not arrays:
        return 0.0
    squares = sum(jnp.sum(jnp.square(a.astype(jnp.float32))) for a in arrays)
    return math.sqrt(float(squares) / sum(a.size for a in arrays))


def diagnostics(opt_state):
    """RMS of the Muon momentum over all Muon matrices and of the Adam side's first moment (as
    torch.py's)."""
    is_state = lambda x: isinstance(x, MuonState | optax.ScaleByAdamState)  # noqa: E731
    states = [s for s in jax.tree.leaves(opt_state, is_leaf=is_state) if is_state(s)]
    muon = [leaf for s in states if isinstance(s, MuonState) for leaf in jax.tree.leaves(s.mu)]
    adam = [leaf for s in states if isinstance(s, optax.ScaleByAdamState) for leaf in jax.tree.leaves(s.mu)]
    return {"muon_momentum_rms": _rms(muon), "adam_momentum_rms": _rms(adam)}


# The schedules end at the step hint: the trial ends there too (a zero learning rate gains nothing).
training_steps = until_step_hint
