"""The Kronecker-factored example (examples/kronecker): torch hooks and JAX's captured layer
statistics must give the same optimizer, and it must precondition for real."""

from __future__ import annotations

import itertools

import numpy as np
import pytest
from parity_utils import loaded_pair, perturbed, torch_to_jax_params, train_losses

from algoperf.plugins import REPO_ROOT, find_submission, import_submission_file
from algoperf.tuning import load_search_space

torch = pytest.importorskip("torch")
jax = pytest.importorskip("jax")

EXAMPLE = REPO_ROOT / "examples" / "kronecker"
NUM_STEPS = 8


@pytest.fixture(scope="module")
def pair(tmp_path_factory):
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("ALGOPERF_CACHE", str(tmp_path_factory.mktemp("cache")))
        yield loaded_pair("shakespeare")


def plugins():
    source = find_submission(str(EXAMPLE))
    return import_submission_file(source, "torch"), import_submission_file(source, "jax")


def losses(pair, hparams, jax_too=True):
    torch_plugin, jax_plugin = plugins()
    stream = pair.torch_workload.train_batches(pair.torch_workload.to_device(pair.splits.train), 32, 0)
    data = [{k: np.asarray(v.cpu()) for k, v in b.items()} for b in itertools.islice(stream, NUM_STEPS)]
    model = perturbed(pair.torch_model)
    torch_losses = train_losses("torch", pair.torch_workload, model, None, torch_plugin, data, hparams)
    if not jax_too:
        return np.array(torch_losses), None
    params = torch_to_jax_params(model, pair.fresh_jax_params, pair.jax_workload.param_types)
    jax_losses = train_losses("jax", pair.jax_workload, params, pair.jax_state, jax_plugin, data, hparams)
    return np.array(torch_losses), np.array(jax_losses)


def defaults(**changes):
    values = load_search_space(EXAMPLE).defaults()
    return {**values, "warmup_fraction": 0.0, "inverse_every": 3, **changes}


@pytest.mark.slow
def test_hooks_and_captured_layers_train_alike(pair):
    torch_losses, jax_losses = losses(pair, defaults())
    np.testing.assert_allclose(jax_losses, torch_losses, rtol=2e-4)
    assert torch_losses[-1] < torch_losses[0]


@pytest.mark.slow
def test_the_preconditioner_changes_the_steps(pair):
    """Damping 1e6 makes the preconditioner a multiple of the identity (plain momentum SGD
    after the norm rescaling): the curves must differ from the default damping's."""
    preconditioned, _ = losses(pair, defaults(), jax_too=False)
    plain, _ = losses(pair, defaults(damping=1e6), jax_too=False)
    assert np.abs(preconditioned[2:] - plain[2:]).max() > 1e-3
