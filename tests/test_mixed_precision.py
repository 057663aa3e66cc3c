"""Mixed precision (`precision: bfloat16` in a size's options, as the GPU sizes declare): bf16
compute, float32 parameters, optimizer state, outputs and loss, in both frameworks.

Runs the small models with the option switched on (the large ones are the same code, only
wider), on the CPU: autocast and XLA both support bf16 there.
"""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
from parity_utils import sgd_plugins, train_losses

from algoperf.plugins import workload_class
from algoperf.spec import ForwardPassMode

torch = pytest.importorskip("torch")
jax = pytest.importorskip("jax")

CASES = {
    "fashion_mnist": lambda rng: {
        "inputs": rng.normal(size=(8, 1, 28, 28)).astype(np.float32),
        "targets": rng.integers(0, 10, 8),
    },
    "shakespeare": lambda rng: {
        "inputs": rng.integers(0, 84, (4, 32)),  # the small size's context
        "targets": rng.integers(0, 84, (4, 32)),
    },
}


def bf16_workload(name: str, framework: str):
    cls = workload_class(name, framework)
    small = cls.sizes["small"]
    workload = cls("small")
    options = {**small.options, "precision": "bfloat16"}
    workload.sizes = {**cls.sizes, "small": dataclasses.replace(small, options=options)}
    return workload


def test_large_sizes_declare_mixed_precision_and_small_ones_do_not():
    for name in ("fashion_mnist", "fashion_mnist_gelu", "shakespeare", "shakespeare_postnorm"):
        assert workload_class(name, "torch")("large").precision == "bfloat16"
    for name in ("fashion_mnist", "shakespeare", "qm9"):
        assert workload_class(name, "torch")("small").precision == "float32"


def eval_outputs(workload, params, state, batch) -> np.ndarray:
    device_batch = workload.to_device(batch)

    def forward(p):
        return workload.model_fn(p, device_batch, state, ForwardPassMode.EVAL, None, False)[0]

    # JAX compiled, as the harness runs it (op by op the bf16 forward is the slow part).
    return np.asarray((jax.jit(forward) if workload.framework == "jax" else forward)(params))


def gradients(workload, params, state, batch) -> list:
    """Gradients of the mean training loss with respect to every parameter."""
    device_batch = workload.to_device(batch)
    if workload.framework == "torch":
        outputs, _ = workload.model_fn(params, device_batch, state, ForwardPassMode.TRAIN, None, True)
        loss = workload.loss_fn(device_batch["targets"], outputs)
        (loss["summed"] / loss["n_valid_examples"]).backward()
        return [p.grad for p in params.parameters()]

    def mean_loss(p):
        outputs, _ = workload.model_fn(p, device_batch, state, ForwardPassMode.TRAIN, None, True)
        loss = workload.loss_fn(device_batch["targets"], outputs)
        return loss["summed"] / loss["n_valid_examples"]

    # Compiled: op by op, the bf16 backward took 18.5 s on fashion_mnist (4.3 s compiled).
    return jax.tree.leaves(jax.jit(jax.grad(mean_loss))(params))


@pytest.mark.parametrize("framework", ["torch", "jax"])
@pytest.mark.parametrize("name", sorted(CASES))
def test_bf16_compute_float32_parameters_gradients_and_outputs(name, framework):
    torch.set_num_threads(1)
    batch = CASES[name](np.random.default_rng(0))
    mixed, full = bf16_workload(name, framework), workload_class(name, framework)("small")
    params, state = mixed.init_model_fn(0)
    full.init_model_fn(0)
    low, high = (eval_outputs(w, params, state, batch) for w in (mixed, full))
    assert low.dtype == np.float32  # outputs come back in float32
    # bf16 rounding (8 bits of mantissa): close to the float32 forward, never identical.
    assert 0 < np.abs(low - high).max() < 0.05 * np.abs(high).max()

    grads = gradients(mixed, params, state, batch)
    assert {str(g.dtype) for g in grads} == {"torch.float32" if framework == "torch" else "float32"}
    assert all(bool(np.isfinite(np.asarray(g)).all()) for g in grads)
    torch_plugin, jax_plugin = sgd_plugins(0.05)
    plugin = torch_plugin if framework == "torch" else jax_plugin
    losses = train_losses(framework, mixed, params, state, plugin, [batch] * 4)
    assert np.all(np.isfinite(losses)) and losses[-1] < losses[0]  # trains in mixed precision
