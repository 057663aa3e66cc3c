"""Torch <-> JAX parity of QM9 (sum and mean readout): same parameters, same function, same
training, same batches.

The torch model's weights are copied into the flax model (tests/parity_utils.py); then the
forward pass (padded graphs included), the loss, the evaluation and ten plain-SGD steps through
each framework's standard step must agree, the train batches must hold the same rows, and the
parameter names, types and shapes (after the layout mapping) must match. Runs on the first
1500 molecules with a private cache (as tests/test_workload_qm9.py).
"""

from __future__ import annotations

import copy

import numpy as np
import pytest
from parity_utils import (
    initialised_pair,
    layout_mismatches,
    parameter_count,
    sgd_plugins,
    torch_params_numpy,
    train_losses,
)

from algoperf.errors import AlgoperfError
from algoperf.frameworks.jax import compile_count, flatten_params
from algoperf.plugins import workload_class
from algoperf.spec import ForwardPassMode

torch = pytest.importorskip("torch")
jax = pytest.importorskip("jax")

SUBSET = 1500
NUM_STEPS = 10
BATCH_SIZE = 32
LEARNING_RATE = 0.01  # 0.1 made the sum readout's loss jump to 23 in a few steps
VARIANTS = ["qm9", "qm9_mean"]
# Measured: the loss curves agree to 2e-7 relative (7e-7 at learning rate 0.1): float32
# rounding only (segment_sum and index_add_ add the messages in different orders).
CURVE_RTOL = 1e-5


def subset_workload(name: str, framework: str):
    workload = workload_class(name, framework)("small")
    workload.max_molecules = SUBSET
    return workload


@pytest.fixture(scope="module")
def splits(cache_root):
    torch.set_num_threads(1)
    try:
        return subset_workload("qm9", "torch").load_splits()
    except AlgoperfError as e:  # qm9pack is not installed here
        pytest.skip(str(e))


@pytest.fixture(scope="module", params=VARIANTS)
def pair(request, splits):
    """Both workloads initialised (splits loaded, for the target's standard deviation).

    `torch_model` has its zero-initialised last head layer re-drawn with torch's default
    initialisation, so every parameter shapes the outputs and gets a gradient from step 1;
    `jax_params` holds its weights, `fresh_jax_params` the JAX workload's own initialisation."""
    torch_workload = subset_workload(request.param, "torch")
    jax_workload = subset_workload(request.param, "jax")
    torch_workload.load_splits()
    jax_workload.load_splits()

    def redraw_last_head_layer(model):
        model = copy.deepcopy(model)
        torch.manual_seed(1)
        model.head[-1].reset_parameters()
        return model

    return initialised_pair(torch_workload, jax_workload, redraw_last_head_layer)


def batches(split: dict[str, np.ndarray], count: int, start: int = 0) -> list[dict[str, np.ndarray]]:
    return [
        {k: v[start + i * BATCH_SIZE : start + (i + 1) * BATCH_SIZE] for k, v in split.items()}
        for i in range(count)
    ]


def outputs_of(pair, batch: dict[str, np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
    torch_workload, jax_workload = pair.torch_workload, pair.jax_workload
    torch_out, _ = torch_workload.model_fn(
        pair.torch_model, torch_workload.to_device(batch), None, ForwardPassMode.EVAL, None, False
    )
    jax_out, _ = jax_workload.model_fn(
        pair.jax_params, jax_workload.to_device(batch), pair.jax_state, ForwardPassMode.EVAL, None, False
    )
    return np.asarray(jax_out), torch_out.numpy()


def test_parameter_names_types_and_shapes_agree(pair):
    assert layout_mismatches(pair.torch_workload, pair.jax_workload) == []
    jax_count = parameter_count(pair.jax_workload.param_shapes)
    assert jax_count == parameter_count(pair.torch_workload.param_shapes)
    assert list(flatten_params(pair.fresh_jax_params)) != []  # names come from flax's own tree


def test_forward_outputs_and_loss_agree(pair, splits):
    batch = batches(splits.train, 1)[0]
    jax_out, torch_out = outputs_of(pair, batch)
    assert jax_out.shape == torch_out.shape == (BATCH_SIZE,) and np.abs(torch_out).max() > 0.1
    np.testing.assert_allclose(jax_out, torch_out, rtol=1e-4, atol=1e-5)
    weights = batch["weights"]
    torch_loss = pair.torch_workload.loss_fn(
        torch.from_numpy(batch["targets"]), torch.from_numpy(torch_out), torch.from_numpy(weights)
    )
    jnp = jax.numpy
    jax_loss = pair.jax_workload.loss_fn(
        jnp.asarray(batch["targets"]), jnp.asarray(jax_out), jnp.asarray(weights)
    )
    np.testing.assert_allclose(float(jax_loss["summed"]), float(torch_loss["summed"]), rtol=1e-5)
    assert float(jax_loss["n_valid_examples"]) == float(torch_loss["n_valid_examples"]) == BATCH_SIZE


def test_padded_graphs_are_masked_alike(pair, splits):
    """A validation batch straddling the end of the real graphs (the rest are weight-0 empty
    graphs): same outputs and masked loss; noise in padded nodes and edges changes nothing."""
    validation = splits.validation
    real = int((validation["weights"] > 0).sum())
    batch = batches(validation, 1, start=real - BATCH_SIZE // 2)[0]
    assert 0 < batch["weights"].sum() < BATCH_SIZE
    jax_out, torch_out = outputs_of(pair, batch)
    np.testing.assert_allclose(jax_out, torch_out, rtol=1e-4, atol=1e-5)

    noisy = dict(batch)
    pad_nodes, pad_edges = ~batch["node_mask"], ~batch["edge_mask"]
    noisy["inputs"] = np.where(pad_nodes[..., None], 1, batch["inputs"]).astype(np.uint8)
    noisy["edge_features"] = np.where(pad_edges[..., None], 1, batch["edge_features"]).astype(np.uint8)
    noisy["edge_index"] = np.where(pad_edges[..., None], 3, batch["edge_index"]).astype(np.uint8)
    noisy_out, _ = outputs_of(pair, noisy)
    np.testing.assert_allclose(noisy_out, jax_out, rtol=1e-6, atol=1e-6)

    torch_metrics = pair.torch_workload.eval_metrics(
        pair.torch_model, None, pair.torch_workload.to_device(validation)
    )
    jax_metrics = pair.jax_workload.eval_metrics(
        pair.jax_params, pair.jax_state, pair.jax_workload.to_device(validation)
    )
    assert jax_metrics.keys() == torch_metrics.keys() == {"loss", "mae_ev"}
    for name, value in torch_metrics.items():
        np.testing.assert_allclose(jax_metrics[name], value, rtol=1e-5, err_msg=name)


def test_sgd_training_curves_agree(pair, splits):
    torch_plugin, jax_plugin = sgd_plugins(LEARNING_RATE)
    data = batches(splits.train, NUM_STEPS)
    jax_workload = pair.jax_workload
    jax_losses = train_losses("jax", jax_workload, pair.jax_params, pair.jax_state, jax_plugin, data)
    torch_losses = train_losses("torch", pair.torch_workload, pair.torch_model, None, torch_plugin, data)
    assert np.mean(torch_losses[-3:]) < np.mean(torch_losses[:3])  # the steps really train
    np.testing.assert_allclose(jax_losses, torch_losses, rtol=CURVE_RTOL)


def test_train_batches_hold_the_same_rows(pair, splits):
    """Same seed, same rows (the shared numpy stream), gathered on the device without
    compiling again after the first batch."""
    torch_stream = pair.torch_workload.train_batches(
        pair.torch_workload.to_device(splits.train), BATCH_SIZE, 7
    )
    jax_stream = pair.jax_workload.train_batches(pair.jax_workload.to_device(splits.train), BATCH_SIZE, 7)
    next(jax_stream)
    next(torch_stream)
    compiles = compile_count()
    for _ in range(3):
        torch_batch, jax_batch = next(torch_stream), next(jax_stream)
        assert jax_batch.keys() == torch_batch.keys()
        for key, value in torch_batch.items():
            np.testing.assert_array_equal(np.asarray(jax_batch[key]), value.numpy(), err_msg=key)
    assert compile_count() == compiles


def test_default_initialisation_matches_torch_distribution(pair):
    """The JAX workload's own weights follow torch's defaults: U(±1/sqrt(fan_in)) for linear
    weights and biases, norm scale 1 and bias 0, a zero last head layer — as torch's own."""
    jax_flat = {k: np.asarray(v) for k, v in flatten_params(pair.fresh_jax_params).items()}
    torch_values = torch_params_numpy(pair.fresh_torch_model)
    last = [name for name in jax_flat if name.startswith("head.2.")]
    assert sorted(last) == ["head.2.bias", "head.2.weight"]
    for name, value in jax_flat.items():
        reference = torch_values[name]
        if name in last or pair.jax_workload.param_types[name].value.startswith("norm"):
            np.testing.assert_array_equal(value.ravel(), reference.ravel(), err_msg=name)
            continue
        weight = jax_flat[name.rsplit(".", 1)[0] + ".weight"]  # a bias's bound is its weight's
        bound = 1 / np.sqrt(np.prod(weight.shape[:-1]))  # flax kernels end with the out axis
        for values in (value, reference):
            assert np.abs(values).max() <= bound, name
            if values.size >= 100:  # U(-b, b) has std b/sqrt(3)
                np.testing.assert_allclose(values.std(), bound / np.sqrt(3), rtol=0.15, err_msg=name)
