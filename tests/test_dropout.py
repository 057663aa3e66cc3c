"""Dropout through `model_fn(..., dropout_rate=...)`, for every paired registry workload in both
frameworks (variants whose dropout sites differ from their base's included):

- rate 0 or None gives exactly the outputs of a call without the argument (torch draws no
  random numbers; the JAX graph holds no random op);
- a positive rate changes the train-mode outputs, deterministically for a fixed seed (torch) or
  key (JAX), and evaluation ignores it;
- under jit a traced rate works and a new value does not compile again;
- a model without dropout (`supports_dropout = False`) and rates outside [0, 1) are refused;
- the harness's standard step takes the hyperparameter `dropout_rate`.
"""

from __future__ import annotations

import math
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
from parity_utils import (
    load_splits_or_skip,
    make_workload,
    perturbed,
    sgd_plugins,
    torch_to_jax_params,
    train_losses,
)

from algoperf.errors import AlgoperfError
from algoperf.plugins import REPO_ROOT, list_workloads
from algoperf.spec import ForwardPassMode

torch = pytest.importorskip("torch")
jax = pytest.importorskip("jax")
jnp = jax.numpy

BATCH_SIZE = 16
RATE = 0.3
# Every paired workload whose model places dropout differently: the base models, and variants
# that change the blocks dropout sits in (post-norm). Variants that swap an activation or the
# pooling share their base's dropout sites and are left out (the golden and parity tests run
# them at rate 0).
SAME_DROPOUT_SITES = {"fashion_mnist_gelu": "fashion_mnist", "qm9_mean": "qm9"}
PAIRED_WORKLOADS = sorted(
    name
    for name, entry in list_workloads().items()
    if Path(entry["folder"]).resolve().parent == (REPO_ROOT / "workloads").resolve()
    and {"torch", "jax"} <= set(entry["frameworks"])
    and name not in SAME_DROPOUT_SITES
)
TRAIN, EVAL = ForwardPassMode.TRAIN, ForwardPassMode.EVAL


@pytest.fixture(scope="module")
def private_cache(tmp_path_factory):
    """Subsets build their own cache, never the user's."""
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("ALGOPERF_CACHE", str(tmp_path_factory.mktemp("cache")))
        yield


@pytest.fixture(scope="module", params=PAIRED_WORKLOADS)
def loaded(request, private_cache):
    """Both models of one workload with the same perturbed weights (a zero-initialised last
    layer would hide what dropout does) and one training batch on each framework's device."""
    torch.set_num_threads(1)
    torch_workload, jax_workload = make_workload(request.param, "torch"), make_workload(request.param, "jax")
    splits = load_splits_or_skip(torch_workload)
    torch_model, _ = torch_workload.init_model_fn(0)
    jax_params, jax_state = jax_workload.init_model_fn(0)
    torch_model = perturbed(torch_model)
    jax_params = torch_to_jax_params(torch_model, jax_params, jax_workload.param_types)
    batch = next(torch_workload.train_batches(torch_workload.to_device(splits.train), BATCH_SIZE, 0))
    numpy_batch = {k: v.cpu().numpy() for k, v in batch.items()}
    return SimpleNamespace(
        torch=SimpleNamespace(workload=torch_workload, params=torch_model, state=None, batch=batch),
        jax=SimpleNamespace(
            workload=jax_workload,
            params=jax_params,
            state=jax_state,
            batch=jax_workload.to_device(numpy_batch),
        ),
        splits=splits,
    )


def as_numpy(array) -> np.ndarray:
    return array.detach().cpu().numpy() if isinstance(array, torch.Tensor) else np.asarray(array)


def forward(side, framework: str, mode=TRAIN, seed: int = 0, **kwargs) -> np.ndarray:
    """model_fn's outputs as numpy; torch's global generator seeded with `seed`, JAX's key
    made from it."""
    if framework == "torch":
        torch.manual_seed(seed)
        rng = seed
    else:
        rng = jax.random.key(seed)
    outputs, _ = side.workload.model_fn(side.params, side.batch, side.state, mode, rng, True, **kwargs)
    return as_numpy(outputs)


FRAMEWORKS = pytest.mark.parametrize("framework", ["torch", "jax"])


@FRAMEWORKS
@pytest.mark.parametrize("mode", [TRAIN, EVAL], ids=["train", "eval"])
def test_rate_zero_or_none_is_the_plain_forward_pass(loaded, framework, mode):
    side = getattr(loaded, framework)
    plain = forward(side, framework, mode)
    for rate in (None, 0, 0.0):
        np.testing.assert_array_equal(forward(side, framework, mode, dropout_rate=rate), plain)


def test_torch_rate_zero_draws_no_random_numbers(loaded):
    side = loaded.torch
    torch.manual_seed(0)
    before = torch.get_rng_state()
    side.workload.model_fn(side.params, side.batch, None, TRAIN, 0, True, dropout_rate=0.0)
    assert torch.equal(torch.get_rng_state(), before)
    side.workload.model_fn(side.params, side.batch, None, TRAIN, 0, True, dropout_rate=RATE)
    assert not torch.equal(torch.get_rng_state(), before)


def test_jax_rate_zero_adds_nothing_to_the_graph(loaded):
    side = loaded.jax

    def graph(**kwargs):
        return str(
            jax.make_jaxpr(
                lambda params, batch, rng: side.workload.model_fn(
                    params, batch, side.state, TRAIN, rng, True, **kwargs
                )[0]
            )(side.params, side.batch, jax.random.key(0))
        )

    plain = graph()
    assert graph(dropout_rate=0.0) == plain
    assert "random_" not in plain
    assert "random_bits" in graph(dropout_rate=RATE)


@FRAMEWORKS
def test_positive_rate_changes_train_outputs_deterministically(loaded, framework):
    side = getattr(loaded, framework)
    plain = forward(side, framework)
    dropped = forward(side, framework, seed=1, dropout_rate=RATE)
    assert np.all(np.isfinite(dropped))
    assert not np.allclose(dropped, plain)
    np.testing.assert_array_equal(forward(side, framework, seed=1, dropout_rate=RATE), dropped)
    assert not np.array_equal(forward(side, framework, seed=2, dropout_rate=RATE), dropped)


@FRAMEWORKS
def test_eval_ignores_the_rate(loaded, framework):
    side = getattr(loaded, framework)
    np.testing.assert_array_equal(
        forward(side, framework, EVAL, seed=1, dropout_rate=0.9), forward(side, framework, EVAL)
    )


def test_jax_traced_rate_under_jit(loaded):
    """A submission's jitted step may take the rate as an argument: it is traced, a rate of 0
    gives the plain outputs, a rate matches the same Python rate, and new values do not compile
    the function again."""
    from algoperf.frameworks.jax import compile_count

    side = loaded.jax

    @jax.jit
    def outputs(params, batch, rng, rate):
        return side.workload.model_fn(params, batch, side.state, TRAIN, rng, True, dropout_rate=rate)[0]

    rng = jax.random.key(3)
    plain = forward(side, "jax")
    at_zero = np.asarray(outputs(side.params, side.batch, rng, jnp.float32(0.0)))
    np.testing.assert_allclose(at_zero, plain, rtol=1e-5, atol=1e-5 * np.abs(plain).max())
    traced = np.asarray(outputs(side.params, side.batch, rng, jnp.float32(RATE)))
    eager = forward(side, "jax", seed=3, dropout_rate=RATE)
    np.testing.assert_allclose(traced, eager, rtol=1e-5, atol=1e-5 * np.abs(eager).max())
    compiles = compile_count()
    outputs(side.params, side.batch, rng, jnp.float32(0.5))
    assert compile_count() == compiles


# ---- refusals and the shape of dropout: once per framework, on Fashion-MNIST -----------------


@pytest.fixture(scope="module")
def fashion(private_cache):
    """Fashion-MNIST's models, a batch, and subclasses that declare no dropout layers."""
    torch.set_num_threads(1)
    sides = {}
    for framework in ("torch", "jax"):
        workload = make_workload("fashion_mnist", framework)
        no_dropout_class = type("NoDropout", (type(workload),), {"supports_dropout": False})
        no_dropout = no_dropout_class("small")
        params, state = workload.init_model_fn(0)
        no_dropout.init_model_fn(0)
        rng = np.random.default_rng(0)
        images = rng.standard_normal((64, 1, 28, 28)).astype(np.float32)
        batch = workload.to_device({"inputs": images, "targets": np.zeros(64, np.int64)})
        sides[framework] = SimpleNamespace(
            workload=workload, no_dropout=no_dropout, params=params, state=state, batch=batch
        )
    return SimpleNamespace(**sides)


def call(side, framework: str, workload=None, mode=TRAIN, rng="default", **kwargs):
    if rng == "default":
        rng = 0 if framework == "torch" else jax.random.key(0)
    workload = workload or side.workload
    return workload.model_fn(side.params, side.batch, side.state, mode, rng, True, **kwargs)[0]


@FRAMEWORKS
def test_a_model_without_dropout_refuses_a_nonzero_rate(fashion, framework):
    side = getattr(fashion, framework)
    workload = side.no_dropout
    with pytest.raises(AlgoperfError) as refused:
        call(side, framework, workload, dropout_rate=0.1)
    assert str(refused.value) == (
        f"the {workload.full_name} model has no dropout layers: dropout_rate=0.1 cannot be "
        "honoured; pass dropout_rate=0 or None"
    )
    with pytest.raises(AlgoperfError, match="no dropout layers"):
        call(side, framework, workload, EVAL, dropout_rate=0.5)
    plain = as_numpy(call(side, framework))
    for rate in (None, 0, 0.0):
        np.testing.assert_array_equal(as_numpy(call(side, framework, workload, dropout_rate=rate)), plain)


def test_a_jax_model_without_dropout_refuses_a_traced_rate(fashion):
    side = fashion.jax
    traced = jax.jit(lambda rate: call(side, "jax", side.no_dropout, dropout_rate=rate))
    with pytest.raises(
        AlgoperfError, match="no dropout layers.*traced.*pass dropout_rate as a Python number"
    ):
        traced(jnp.float32(0.0))


@FRAMEWORKS
@pytest.mark.parametrize("rate", [-0.1, 1.0, 1.5, float("nan")])
def test_rates_outside_zero_to_one_are_refused(fashion, framework, rate):
    side = getattr(fashion, framework)
    with pytest.raises(AlgoperfError, match=r"is outside \[0, 1\)"):
        call(side, framework, dropout_rate=rate)
    with pytest.raises(AlgoperfError, match=r"is outside \[0, 1\)"):
        call(side, framework, side.no_dropout, dropout_rate=rate)


def test_jax_dropout_in_train_mode_needs_an_rng(fashion):
    side = fashion.jax
    with pytest.raises(AlgoperfError, match="needs an rng"):
        call(side, "jax", rng=None, dropout_rate=0.1)
    # Rate 0 needs none (the golden curves run so); nor does evaluation.
    call(side, "jax", rng=None, dropout_rate=0.0)
    call(side, "jax", mode=EVAL, rng=None, dropout_rate=0.1)


@FRAMEWORKS
def test_the_standard_step_takes_the_dropout_rate_hyperparameter(fashion, framework):
    """The harness's plugin step passes the search space's `dropout_rate` to model_fn (rate 0's
    JAX graph is the plain one: test_jax_rate_zero_adds_nothing_to_the_graph)."""
    side = getattr(fashion, framework)
    batches = [{k: as_numpy(v) for k, v in side.batch.items()}] * 2
    plugin = dict(zip(("torch", "jax"), sgd_plugins(0.01), strict=True))[framework]

    def losses(**hparams):
        torch.manual_seed(0)
        return train_losses(framework, side.workload, side.params, side.state, plugin, batches, hparams)

    plain = losses()
    if framework == "torch":
        assert losses(dropout_rate=0.0) == plain
    with_dropout = losses(dropout_rate=0.5)
    assert all(math.isfinite(x) for x in with_dropout)
    assert with_dropout != plain
    with pytest.raises(AlgoperfError, match="no dropout layers"):
        train_losses(
            framework, side.no_dropout, side.params, side.state, plugin, batches, {"dropout_rate": 0.5}
        )


def head_inputs(side, framework: str, rate: float) -> np.ndarray:
    """What Fashion-MNIST's linear head receives in train mode at `rate`."""
    seen = []
    if framework == "torch":
        hook = side.params.head.register_forward_pre_hook(lambda module, args: seen.append(args[0]))
        try:
            call(side, framework, dropout_rate=rate)
        finally:
            hook.remove()
        return as_numpy(seen[0])

    def record(next_fun, args, kwargs, context):
        if context.module.name == "head" and context.method_name == "__call__":
            seen.append(args[0])
        return next_fun(*args, **kwargs)

    import flax.linen as nn

    with nn.intercept_methods(record):
        call(side, framework, dropout_rate=rate)
    return as_numpy(seen[0])


@FRAMEWORKS
@pytest.mark.parametrize("rate", [0.2, 0.7])
def test_fashion_mnist_head_input_is_dropped_at_the_rate(fashion, framework, rate):
    side = getattr(fashion, framework)
    pooled = head_inputs(side, framework, 0.0)
    dropped = head_inputs(side, framework, rate)
    live = pooled != 0
    assert live.sum() > 2000  # 64 images x 64 channels, almost all nonzero
    zeroed = (dropped == 0) & live
    # Binomial(n, rate): 5 standard deviations is under 0.05 here.
    assert abs(zeroed.sum() / live.sum() - rate) < 5 * math.sqrt(rate * (1 - rate) / live.sum())
    kept = ~zeroed & live
    np.testing.assert_allclose(dropped[kept], pooled[kept] / (1 - rate), rtol=1e-5)
