"""Torch <-> JAX parity of the baselines: the same name must mean the same update rule.

For each baseline (and every optimizer plugin with both files), `algoperf.parity` runs the
torch optimizer (its `make_optimizer`, scheduler included) and the optax transformation (its
jax.py `make_optimizer`) for K steps on a real workload's parameters (types, roles and layouts
as in a trial, so plugins that group parameters work) from identical values, on an identical
objective; the parameters must agree after every step. The step hint is 2K so the K steps
cover linear warmup and the start of cosine decay. Submissions are loaded by path
(algoperf.plugins), never through sys.path.
"""

from __future__ import annotations

import re
import sys
from pathlib import Path

import numpy as np
import pytest

from algoperf import parity
from algoperf.parity import format_report, update_parity
from algoperf.plugins import find_submission, import_submission_file, list_submissions
from algoperf.spec import Hyperparameters
from algoperf.tuning import SearchSpace

torch = pytest.importorskip("torch")
jax = pytest.importorskip("jax")
optax = pytest.importorskip("optax")
jnp = jax.numpy

NUM_STEPS = 10
STEP_HINT = 20
SHAPES = {"matrix": (8, 5), "vector": (5,), "scalar": ()}
RTOL, ATOL = 1e-5, 1e-6

# The baselines the benchmark promises in both frameworks.
BASELINES = [
    "adamw",
    "nadamw",
    "lion",
    "lamb",
    "sgd_nesterov",
    "muon",
    "ademamix",
    "adan",
    "prodigy",
    "dadapt_adamw",
    "sam",
    "cautious_nadamw",
]
# Values large enough that every term shows: weight decay well above rounding (so coupled vs
# decoupled decay differs by far more than the tolerance), b2 < 0.999 so the second moment's bias
# correction moves, warmup_fraction 0.2 -> 4 warmup steps then cosine decay over 16.
COMMON = {
    "learning_rate": 1e-2,
    "one_minus_beta1": 0.1,
    "beta2": 0.99,
    "weight_decay": 0.2,
    "warmup_fraction": 0.2,
    "label_smoothing": 0.0,
}
OVERRIDES = {
    "lion": {"learning_rate": 1e-3, "weight_decay": 1.0},
    "lamb": {"learning_rate": 2e-2},
    "sgd_nesterov": {"learning_rate": 0.1, "one_minus_momentum": 0.1, "weight_decay": 0.05},
    # Learning-rate free: d grows from d0 ~10x (Prodigy) and ~30x (D-Adaptation) in the 10 steps.
    "prodigy": {"learning_rate": 2.0, "d0": 1e-3, "warmup_fraction": 0.1},
    "dadapt_adamw": {"learning_rate": 1.0, "d0": 1e-3},
    "muon": {"adam_learning_rate": 3e-3},
    "ademamix": {"beta3": 0.9999, "alpha": 5.0},
    "adan": {"one_minus_beta2": 0.08, "one_minus_beta3": 0.01},
    # Far above the search space: at its radii the ascent step barely moves the synthetic
    # objective's parameters, so plain AdamW in one framework would pass for SAM.
    "sam": {"rho": 50.0},
}


PLUGIN_FACTORY = re.compile(r"^def make_optimizer\(", re.MULTILINE)


def plugin_submissions_in_both_frameworks() -> list[str]:
    """Registered optimizer plugins with torch.py and jax.py: tested for free when added."""
    names = set()
    for name, source in list_submissions().items():
        if set(source.frameworks) >= {"torch", "jax"} and all(
            PLUGIN_FACTORY.search(source.file(fw).read_text()) for fw in ("torch", "jax")
        ):
            names.add(name)
    return sorted(names - set(BASELINES))


def parity_hparams(name: str) -> Hyperparameters:
    """The search space's defaults with the test's values for the names it has."""
    source = find_submission(name)
    values = SearchSpace.from_yaml(source.search_space_path).defaults()
    wanted = {**COMMON, **OVERRIDES.get(name, {})}
    values.update({k: v for k, v in wanted.items() if k in values})
    return Hyperparameters(values)


def initial_params_and_grads(seed: int = 0):
    rng = np.random.default_rng(seed)
    params = {k: rng.normal(size=s).astype(np.float32) for k, s in SHAPES.items()}
    grads = [{k: rng.normal(size=s).astype(np.float32) for k, s in SHAPES.items()} for _ in range(NUM_STEPS)]
    return params, grads


def assert_same_trajectory(name, torch_steps, jax_steps, params) -> None:
    for step, (t, j) in enumerate(zip(torch_steps, jax_steps, strict=True)):
        for k in SHAPES:
            assert t[k].dtype == j[k].dtype == np.float32, (name, k, t[k].dtype, j[k].dtype)
            np.testing.assert_allclose(
                t[k],
                j[k],
                rtol=RTOL,
                atol=ATOL,
                err_msg=f"{name}: torch and jax parameters {k!r} differ after step {step + 1}",
            )
    # A test that both sides leave the parameters alone would pass vacuously.
    for k in SHAPES:
        assert not np.allclose(torch_steps[-1][k], params[k], rtol=1e-3, atol=1e-4), (name, k)


# Workloads beyond fashion_mnist (convolutions, norms, a dense head) for baselines that treat
# parameter kinds or roles differently: embeddings and attention on shakespeare.
MORE_WORKLOADS = {"muon": ["shakespeare", "qm9"], "sam": ["shakespeare"]}


def parity_cases() -> list[tuple[str, str]]:
    names = BASELINES + plugin_submissions_in_both_frameworks()
    return [(n, "fashion_mnist") for n in names] + [(n, w) for n in names for w in MORE_WORKLOADS.get(n, [])]


@pytest.mark.parametrize(("name", "workload"), parity_cases())
def test_torch_and_jax_updates_agree(name: str, workload: str) -> None:
    source = find_submission(name)
    missing = {"torch", "jax"} - set(source.frameworks)
    if missing:
        pytest.skip(f"{name} has no {', '.join(sorted(missing))} implementation yet")
    result = update_parity(name, workload, NUM_STEPS, hparams=dict(parity_hparams(name).items()))
    report = "\n".join(format_report(result))
    assert result.first_disagreement is None, f"{name} on {workload}: torch and JAX differ\n{report}"
    # A test in which both sides leave the parameters alone would pass vacuously.
    assert result.moved > 1e-3, f"{name}: the parameters barely moved ({result.moved:.1e})\n{report}"


FIXTURES = Path(__file__).parent / "fixtures" / "submissions"


def test_parity_catches_a_different_rule() -> None:
    """The comparison can fail: AdamW with beta2 0.999 in torch and 0.99 in JAX."""
    result = update_parity(str(FIXTURES / "parity_mismatch"), "fashion_mnist", NUM_STEPS)
    assert result.first_disagreement is not None and result.first_disagreement <= 2
    assert result.steps[-1].max_abs > 1e-4


def test_a_plugin_grouping_parameters_by_type_is_compared() -> None:
    """The template's documented pattern (no decay on biases and norms, by param_types) runs
    in the parity check, and decay on every parameter would not match it."""
    result = update_parity(str(FIXTURES / "grouped_adamw"), "fashion_mnist", NUM_STEPS)
    assert result.agrees, "\n".join(format_report(result))


def test_parity_hparams_cover_every_baseline_hyperparameter() -> None:
    """A baseline that grows a hyperparameter gets a deliberate test value, not a silent default."""
    tested = set(COMMON) | {k for v in OVERRIDES.values() for k in v}
    for name in BASELINES:
        space = SearchSpace.from_yaml(find_submission(name).search_space_path)
        names = {p.name for p in space.params}
        assert names <= tested, f"{name}: give {sorted(names - tested)} a value in COMMON/OVERRIDES"


def test_loading_a_torch_py_submission_does_not_shadow_torch() -> None:
    real_torch = sys.modules["torch"]
    path_before = list(sys.path)
    module = import_submission_file(find_submission("adamw"), "torch")
    assert sys.modules["torch"] is real_torch
    assert module is not real_torch and module.__name__ != "torch"
    assert module.__name__.startswith("algoperf_plugins.")
    assert sys.path == path_before
    import torch as torch_again

    assert torch_again is real_torch and hasattr(torch_again, "optim")


def test_schedule_free_adamw_torch_and_jax_agree() -> None:
    """The full-API example: schedulefree.AdamWScheduleFree vs optax.contrib.schedule_free_adamw,
    both the train point y (the parameters while training) and the evaluated average x."""
    source = find_submission("schedule_free_adamw")
    hparams = parity_hparams("schedule_free_adamw")
    params, grads = initial_params_and_grads()

    torch_module = import_submission_file(source, "torch")
    tensors = {k: torch.nn.Parameter(torch.tensor(v)) for k, v in params.items()}
    optimizer = torch_module.build_optimizer(list(tensors.values()), hparams, STEP_HINT)
    jax_module = import_submission_file(source, "jax")
    transformation = jax_module.build_optimizer(hparams, STEP_HINT)
    arrays = {k: jnp.asarray(v) for k, v in params.items()}
    state = transformation.init(arrays)

    train_steps, eval_steps = [], []
    for grad in grads:
        optimizer.train()
        for k, p in tensors.items():
            p.grad = torch.tensor(grad[k])
        optimizer.step()
        train_steps.append({k: p.detach().numpy().copy() for k, p in tensors.items()})
        optimizer.eval()
        eval_steps.append({k: p.detach().numpy().copy() for k, p in tensors.items()})

    jax_train, jax_eval = [], []
    for grad in grads:
        updates, state = transformation.update({k: jnp.asarray(v) for k, v in grad.items()}, state, arrays)
        arrays = optax.apply_updates(arrays, updates)
        jax_train.append({k: np.asarray(v) for k, v in arrays.items()})
        eval_params = optax.contrib.schedule_free_eval_params(state, arrays)
        jax_eval.append({k: np.asarray(v) for k, v in eval_params.items()})

    assert_same_trajectory("schedule_free_adamw (y)", train_steps, jax_train, params)
    assert_same_trajectory("schedule_free_adamw (x)", eval_steps, jax_eval, params)


def test_sam_takes_a_finite_step_on_an_exactly_zero_gradient(monkeypatch) -> None:
    """A dead ReLU head under the absolute-error loss gives an exactly zero gradient (seen on
    qm9); g / |g| there is 0/0. Both frameworks must then take AdamW's step (decay only), not
    turn the parameters into NaN."""

    def flat(shapes, steps, seed):
        zeros = lambda: {n: np.zeros(s, np.float32) for n, s in shapes.items()}  # noqa: E731
        return parity.Objective(zeros(), zeros(), [zeros() for _ in range(steps)])

    monkeypatch.setattr(parity.Objective, "random", staticmethod(flat))
    result = update_parity("sam", "fashion_mnist", 4, hparams={"weight_decay": 0.5})
    assert all(np.isfinite(s.max_abs) for s in result.steps), "\n".join(format_report(result))
    assert result.agrees, "\n".join(format_report(result))
