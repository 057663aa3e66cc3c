"""Torch <-> JAX parity checks particular to QM9 (padded graphs, the zero-initialised head);
the checks every workload gets
(same batches, names/types/shapes, forward pass, loss, evaluation, training curves) are
generated from the registry in tests/test_parity.py."""

from __future__ import annotations

import numpy as np
import pytest
from parity_utils import loaded_pair, torch_params_numpy

from algoperf.frameworks.jax import flatten_params
from algoperf.spec import ForwardPassMode

torch = pytest.importorskip("torch")
jax = pytest.importorskip("jax")

BATCH_SIZE = 32


@pytest.fixture(scope="module", params=["qm9", "qm9_mean"])
def pair(request, tmp_path_factory):
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("ALGOPERF_CACHE", str(tmp_path_factory.mktemp("cache")))
        yield loaded_pair(request.param)


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


def test_padded_graphs_are_masked_alike(pair):
    """A validation batch straddling the end of the real graphs (the rest are weight-0 empty
    graphs): same outputs and masked loss; noise in padded nodes and edges changes nothing."""
    validation = pair.splits.validation
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
