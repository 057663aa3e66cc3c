"""Torch <-> JAX parity checks particular to Shakespeare (causality, GPT-2 initialisation);
the checks every workload gets
(same batches, names/types/shapes, forward pass, loss, evaluation, training curves) are
generated from the registry in tests/test_parity.py."""

from __future__ import annotations

import math

import numpy as np
import pytest
from parity_utils import loaded_pair

from algoperf.frameworks.jax import flatten_params
from algoperf.plugins import list_workloads, load_module
from algoperf.spec import ForwardPassMode

torch = pytest.importorskip("torch")
jax = pytest.importorskip("jax")

data = load_module(list_workloads()["shakespeare"]["folder"] / "workload.py", "workloads")
BATCH_SIZE = 16


@pytest.fixture(scope="module", params=["shakespeare", "shakespeare_postnorm"])
def pair(request, tmp_path_factory):
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("ALGOPERF_CACHE", str(tmp_path_factory.mktemp("cache")))
        yield loaded_pair(request.param)


def batches(splits, count: int, context: int = data.SMALL_OPTIONS["context"]) -> list[dict[str, np.ndarray]]:
    """`count` batches of training windows (of the small size's context) from the shared numpy
    stream."""
    tokens = splits.train["tokens"]
    stream = data.window_starts(*tokens.shape, context, BATCH_SIZE, seed=0)
    flat = tokens.reshape(-1)
    out = []
    for _ in range(count):
        windows = flat[next(stream)[:, None] + np.arange(context + 1)].astype(np.int64)
        out.append({"inputs": windows[:, :-1], "targets": windows[:, 1:]})
    return out


def test_attention_is_causal(pair):
    """Changing the last character changes only the last position's logits."""
    batch = batches(pair.splits, 1)[0]
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
