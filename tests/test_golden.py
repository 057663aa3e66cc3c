"""Golden-curve regression tests: the first training losses of every workload in the registry,
in every framework it has.

For each workload (variants included) and framework, at the small size: model seed 0, data seed
0, batch 32, AdamW (lr 1e-3, weight decay 0; torch.optim.AdamW / optax.adamw) for 10 steps on
one thread. The losses are compared with the committed curve in
tests/golden/<workload>.<framework>.json (rtol 1e-3); a change to the data pipeline, the model,
its initialisation or the loss shows up here. A missing curve fails. After an intended change,
regenerate (run the file alone, so that JAX starts with one thread):

    ALGOPERF_UPDATE_GOLDEN=1 .venv/bin/python -m pytest tests/test_golden.py

A missing dataset skips a curve on a developer's machine and fails it in CI (CI=true), where
every dataset is installed and a skip would pass having checked nothing.
"""

from __future__ import annotations

import json
import math
import os
import warnings
from pathlib import Path

import pytest
from parity_utils import load_splits_or_skip, make_workload

from algoperf.plugins import REPO_ROOT, list_workloads
from algoperf.spec import ForwardPassMode

GOLDEN_DIR = Path(__file__).parent / "golden"
NUM_STEPS = 10
BATCH_SIZE = 32
LEARNING_RATE = 1e-3
UPDATING = os.environ.get("ALGOPERF_UPDATE_GOLDEN") == "1"
REGISTRY = {
    name: entry["frameworks"]
    for name, entry in sorted(list_workloads().items())
    if Path(entry["folder"]).resolve().parent == (REPO_ROOT / "workloads").resolve()
}
CASES = [(name, framework) for name, frameworks in REGISTRY.items() for framework in frameworks]


def golden_path(name: str, framework: str) -> Path:
    return GOLDEN_DIR / f"{name}.{framework}.json"


def torch_first_losses(workload, splits) -> tuple[list[float], dict]:
    import torch

    torch.set_num_threads(1)
    model, model_state = workload.init_model_fn(0)
    optimizer = torch.optim.AdamW(model.parameters(), lr=LEARNING_RATE, weight_decay=0.0)
    batches = workload.train_batches(workload.to_device(splits.train), BATCH_SIZE, seed=0)
    losses = []
    for _ in range(NUM_STEPS):
        batch = next(batches)
        optimizer.zero_grad(set_to_none=True)
        outputs, model_state = workload.model_fn(model, batch, model_state, ForwardPassMode.TRAIN, None, True)
        out = workload.loss_fn(batch["targets"], outputs, batch.get("weights"))
        loss = out["summed"] / out["n_valid_examples"]
        loss.backward()
        optimizer.step()
        losses.append(float(loss.detach()))
    return losses, {"optimizer": f"AdamW lr={LEARNING_RATE} weight_decay=0", "torch": torch.__version__}


def jax_first_losses(workload, splits) -> tuple[list[float], dict]:
    jax = pytest.importorskip("jax")
    optax = pytest.importorskip("optax")
    from algoperf.frameworks.jax import runtime

    # One compute thread, as for torch: effective only before JAX's backend starts (the file run
    # alone); in a longer session that started it with more threads the sums may round in
    # another order, well inside the tolerance. A curve is only written with one thread.
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        runtime.set_threads(1)
    if UPDATING and os.environ.get("PJRT_NPROC") != "1":
        pytest.fail("JAX started with more than one thread: regenerate with tests/test_golden.py alone")
    params, model_state = workload.init_model_fn(0)
    optimizer = optax.adamw(LEARNING_RATE, weight_decay=0.0)
    # Committed to the device, as the step's outputs are: else the second step compiles again.
    opt_state = jax.device_put(optimizer.init(params), runtime.device())

    def mean_loss(params, model_state, batch):
        mode = ForwardPassMode.TRAIN
        outputs, model_state = workload.model_fn(params, batch, model_state, mode, None, True)
        out = workload.loss_fn(batch["targets"], outputs, batch.get("weights"))
        return out["summed"] / out["n_valid_examples"], model_state

    @jax.jit
    def step(params, opt_state, model_state, batch):
        (loss, model_state), grads = jax.value_and_grad(mean_loss, has_aux=True)(params, model_state, batch)
        updates, opt_state = optimizer.update(grads, opt_state, params)
        return optax.apply_updates(params, updates), opt_state, model_state, loss

    batches = workload.train_batches(workload.to_device(splits.train), BATCH_SIZE, seed=0)
    losses = []
    for _ in range(NUM_STEPS):
        params, opt_state, model_state, loss = step(params, opt_state, model_state, next(batches))
        losses.append(float(loss))
    return losses, {"optimizer": f"optax.adamw lr={LEARNING_RATE} weight_decay=0", "jax": jax.__version__}


FIRST_LOSSES = {"torch": torch_first_losses, "jax": jax_first_losses}


def test_registry_has_the_suite_in_both_frameworks():
    assert {"fashion_mnist", "shakespeare", "qm9"} <= set(REGISTRY)
    assert all(set(frameworks) == {"torch", "jax"} for frameworks in REGISTRY.values()), REGISTRY


def test_every_golden_curve_has_its_test():
    """A curve whose workload or framework left the registry (or a misnamed file) is not
    silently kept: every file in tests/golden is one of the cases below."""
    expected = {golden_path(name, framework).name for name, framework in CASES}
    stray = sorted(p.name for p in GOLDEN_DIR.glob("*.json") if p.name not in expected)
    assert not stray, f"golden curves that no test reads: {stray}"


@pytest.mark.parametrize("name, framework", CASES, ids=[f"{n}-{f}" for n, f in CASES])
def test_first_losses_match_golden_curve(name, framework, cache_root, request):
    # cache_root: a private $ALGOPERF_CACHE for this module (subsets build their own cache),
    # shared by a workload's two frameworks.
    if framework not in FIRST_LOSSES:
        pytest.fail(f"no golden recipe for framework {framework!r}: add one to FIRST_LOSSES")
    workload = make_workload(name, framework)
    splits = load_splits_or_skip(workload)
    losses, versions = FIRST_LOSSES[framework](workload, splits)
    path = golden_path(name, framework)
    if UPDATING:
        GOLDEN_DIR.mkdir(exist_ok=True)
        meta = {
            "workload": name,
            "framework": framework,
            "size": "small",
            "model_seed": 0,
            "data_seed": 0,
            "batch_size": BATCH_SIZE,
            "threads": 1,
        }
        path.write_text(json.dumps({**meta, **versions, "losses": losses}, indent=2) + "\n")
    if not path.is_file():
        pytest.fail(
            f"no golden curve {path.relative_to(REPO_ROOT)}; create it with\n"
            f"    ALGOPERF_UPDATE_GOLDEN=1 .venv/bin/python -m pytest '{request.node.nodeid}'"
        )
    golden = json.loads(path.read_text())["losses"]
    assert len(golden) == NUM_STEPS
    moved = f"{name} ({framework}): losses moved from the golden curve"
    assert losses == pytest.approx(golden, rel=1e-3), moved
    assert all(math.isfinite(x) for x in losses) and len(set(losses)) == NUM_STEPS
