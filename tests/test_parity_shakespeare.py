"""Torch <-> JAX parity of Shakespeare: same parameters, same function, same data, same training.

The torch model's initial weights are copied into the flax model (tests/parity_utils.py); then
the forward pass, the loss and ten plain-SGD steps through each framework's standard step must
agree, the two frameworks must draw the same training windows, and the parameter names, types
and shapes (after the layout mapping) must match. Both variants (pre-norm and post-norm).
"""

from __future__ import annotations

import copy
import math

import numpy as np
import pytest
from parity_utils import (
    initialised_pair,
    layout_mismatches,
    parameter_count,
    sgd_plugins,
    torch_to_jax_params,
    train_losses,
)

from algoperf.errors import AlgoperfError
from algoperf.frameworks.jax import flatten_params
from algoperf.plugins import list_workloads, load_module, workload_class
from algoperf.spec import ForwardPassMode

torch = pytest.importorskip("torch")
jax = pytest.importorskip("jax")

data = load_module(list_workloads()["shakespeare"]["folder"] / "workload.py", "workloads")
NUM_STEPS = 10
BATCH_SIZE = 16
LEARNING_RATE = 0.1  # trains steadily: 4.45 -> 3.47 nats in 10 steps (0.3 oscillates)
VARIANTS = ["shakespeare", "shakespeare_postnorm"]
# Measured: the curves agree to ~1e-7 relative (float32 summation order only).
CURVE_RTOL = 1e-4


@pytest.fixture(scope="module")
def splits():
    torch.set_num_threads(1)
    try:
        return workload_class("shakespeare", "torch")().load_splits()
    except AlgoperfError as e:
        pytest.skip(f"Shakespeare texts not installed: {e}")


@pytest.fixture(scope="module", params=VARIANTS)
def pair(request, splits):
    """Both workloads initialised; `jax_params` holds the torch model's initial weights."""
    return initialised_pair(workload_class(request.param, "torch")(), workload_class(request.param, "jax")())


def batches(splits, count: int, context: int = 64) -> list[dict[str, np.ndarray]]:
    """`count` batches of training windows from the shared numpy stream, as int64 arrays."""
    tokens = splits.train["tokens"]
    stream = data.window_starts(*tokens.shape, context, BATCH_SIZE, seed=0)
    flat = tokens.reshape(-1)
    out = []
    for _ in range(count):
        windows = flat[next(stream)[:, None] + np.arange(context + 1)].astype(np.int64)
        out.append({"inputs": windows[:, :-1], "targets": windows[:, 1:]})
    return out


def test_parameter_names_types_and_shapes_agree(pair):
    assert layout_mismatches(pair.torch_workload, pair.jax_workload) == []
    assert parameter_count(pair.jax_workload.param_shapes) == parameter_count(
        pair.torch_workload.param_shapes
    )


def perturbed(torch_model, scale: float = 0.1):
    """A copy of the model with every parameter moved by N(0, scale): activations then reach
    the non-linear ranges that a fresh GPT-style init (weights ~0.02) barely touches."""
    model = copy.deepcopy(torch_model)
    generator = torch.Generator().manual_seed(1)
    with torch.no_grad():
        for p in model.parameters():
            p.add_(scale * torch.randn(p.shape, generator=generator))
    return model


@pytest.mark.parametrize("weights", ["initial", "perturbed"])
def test_forward_outputs_and_loss_agree(pair, splits, weights):
    batch = batches(splits, 1)[0]
    torch_workload, jax_workload = pair.torch_workload, pair.jax_workload
    torch_model = pair.torch_model if weights == "initial" else perturbed(pair.torch_model)
    jax_params = torch_to_jax_params(torch_model, pair.fresh_jax_params, jax_workload.param_types)
    torch_out, _ = torch_workload.model_fn(
        torch_model, torch_workload.to_device(batch), None, ForwardPassMode.EVAL, None, False
    )
    jax_batch = jax_workload.to_device(batch)
    jax_out, _ = jax_workload.model_fn(
        jax_params, jax_batch, pair.jax_state, ForwardPassMode.EVAL, None, False
    )
    assert jax_out.shape == tuple(torch_out.shape) == (BATCH_SIZE, 64, data.VOCAB_SIZE)
    # Measured differences: 5e-7 of outputs up to 0.8 (initial), 4e-6 of outputs up to 4.5
    # (perturbed). Exact instead of tanh-approximate GELU in JAX only moves the perturbed
    # outputs by 1.3e-3 (and the initial ones by up to 3e-5, pre-norm).
    scale = float(torch_out.abs().max())
    np.testing.assert_allclose(np.asarray(jax_out), torch_out.numpy(), rtol=0, atol=1e-5 * scale)
    for smoothing in (0.0, 0.1):
        torch_loss = torch_workload.loss_fn(torch.from_numpy(batch["targets"]), torch_out, None, smoothing)
        jax_loss = jax_workload.loss_fn(jax_batch["targets"], jax_out, None, smoothing)
        np.testing.assert_allclose(float(jax_loss["summed"]), float(torch_loss["summed"]), rtol=1e-5)
        assert int(jax_loss["n_valid_examples"]) == int(torch_loss["n_valid_examples"]) == BATCH_SIZE * 64


def test_attention_is_causal(pair, splits):
    """Changing the last character changes only the last position's logits."""
    batch = batches(splits, 1)[0]
    changed = {**batch, "inputs": batch["inputs"].copy()}
    changed["inputs"][:, -1] = (changed["inputs"][:, -1] + 1) % data.VOCAB_SIZE
    w = pair.jax_workload
    outs = [
        np.asarray(
            w.model_fn(pair.jax_params, w.to_device(b), pair.jax_state, ForwardPassMode.EVAL, None, False)[0]
        )
        for b in (batch, changed)
    ]
    np.testing.assert_array_equal(outs[0][:, :-1], outs[1][:, :-1])
    assert np.abs(outs[0][:, -1] - outs[1][:, -1]).max() > 0


def test_sgd_training_curves_agree(pair, splits):
    torch_plugin, jax_plugin = sgd_plugins(LEARNING_RATE)
    steps = batches(splits, NUM_STEPS)
    jax_losses = train_losses("jax", pair.jax_workload, pair.jax_params, pair.jax_state, jax_plugin, steps)
    torch_losses = train_losses("torch", pair.torch_workload, pair.torch_model, None, torch_plugin, steps)
    assert np.mean(torch_losses[-3:]) < np.mean(torch_losses[:3]) - 0.3  # the steps really train
    np.testing.assert_allclose(jax_losses, torch_losses, rtol=CURVE_RTOL)


def test_both_frameworks_draw_the_same_windows(pair, splits):
    torch_stream = pair.torch_workload.train_batches(
        pair.torch_workload.to_device(splits.train), BATCH_SIZE, 7
    )
    jax_stream = pair.jax_workload.train_batches(pair.jax_workload.to_device(splits.train), BATCH_SIZE, 7)
    for _ in range(3):
        torch_batch, jax_batch = next(torch_stream), next(jax_stream)
        for key in ("inputs", "targets"):
            np.testing.assert_array_equal(np.asarray(jax_batch[key]), torch_batch[key].numpy())


def test_evaluation_agrees(pair, splits):
    """The same weights give the same validation cross-entropy in both frameworks."""
    torch_metrics = pair.torch_workload.eval_metrics(
        pair.torch_model, None, pair.torch_workload.to_device(splits.validation)
    )
    jax_metrics = pair.jax_workload.eval_metrics(
        pair.jax_params, pair.jax_state, pair.jax_workload.to_device(splits.validation)
    )
    assert abs(jax_metrics["cross_entropy"] - math.log(data.VOCAB_SIZE)) < 0.05  # untrained: ~uniform
    for key in ("loss", "cross_entropy"):
        np.testing.assert_allclose(jax_metrics[key], torch_metrics[key], rtol=1e-5)


def test_default_initialisation_matches_torch_distribution(pair):
    """GPT-2 style in both: N(0, 0.02) weights and embeddings, residual projections (attn.out,
    mlp.fc_out) N(0, 0.02 / sqrt(2 layers)), zero biases, LayerNorm scale 1 and bias 0."""
    num_layers = int(pair.jax_workload.options["num_layers"])
    jax_flat = {k: np.asarray(v) for k, v in flatten_params(pair.fresh_jax_params).items()}
    torch_values = {k: p.detach().numpy() for k, p in pair.torch_model.named_parameters()}
    for name, value in jax_flat.items():
        kind = pair.jax_workload.param_types[name].value
        for values in (value, torch_values[name]):
            if kind == "norm_scale":
                np.testing.assert_array_equal(values, 1.0, err_msg=name)
            elif kind in ("norm_bias", "bias"):
                np.testing.assert_array_equal(values, 0.0, err_msg=name)
            else:
                std = 0.02 / (
                    math.sqrt(2 * num_layers)
                    if name.endswith(("attn.out.weight", "mlp.fc_out.weight"))
                    else 1
                )
                np.testing.assert_allclose(values.std(), std, rtol=0.1, err_msg=name)
                assert abs(values.mean()) < 3 * std / math.sqrt(values.size), name
