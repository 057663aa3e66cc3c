"""Torch <-> JAX parity checks particular to Fashion-MNIST; the checks every workload gets
(same batches, names/types/shapes, forward pass, loss, evaluation, training curves) are
generated from the registry in tests/test_parity.py."""

from __future__ import annotations

import numpy as np
import pytest
from parity_utils import loaded_pair, torch_params_numpy

from algoperf.frameworks.jax import flatten_params

torch = pytest.importorskip("torch")
jax = pytest.importorskip("jax")


@pytest.fixture(scope="module", params=["fashion_mnist", "fashion_mnist_gelu"])
def pair(request, tmp_path_factory):
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("ALGOPERF_CACHE", str(tmp_path_factory.mktemp("cache")))
        yield loaded_pair(request.param)


def test_default_initialisation_matches_torch_distribution(pair):
    """The JAX workload's own weights follow torch's defaults: U(±1/sqrt(fan_in)) for conv and
    linear weights and the linear bias, norm scale 1 and bias 0 — as torch's own weights do."""
    jax_flat = {k: np.asarray(v) for k, v in flatten_params(pair.fresh_jax_params).items()}
    torch_values = torch_params_numpy(pair.torch_model)
    for name, value in jax_flat.items():
        reference = torch_values[name]
        if pair.jax_workload.param_types[name].value.startswith("norm"):
            np.testing.assert_array_equal(value.ravel(), reference.ravel(), err_msg=name)
            continue
        weight = jax_flat[name.rsplit(".", 1)[0] + ".weight"]  # a bias's bound is its weight's
        bound = 1 / np.sqrt(np.prod(weight.shape[:-1]))  # flax kernels end with the out axis
        for values in (value, reference):
            assert np.abs(values).max() <= bound, name
            if values.size >= 100:  # U(-b, b) has std b/sqrt(3)
                np.testing.assert_allclose(values.std(), bound / np.sqrt(3), rtol=0.15, err_msg=name)
