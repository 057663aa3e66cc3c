"""Golden-curve regression tests: the first training losses of every workload in the registry.

For each workload (variants included) at its small size: model seed 0, data seed 0, batch 32,
AdamW (lr 1e-3, weight decay 0) for 10 steps on one thread. The losses are compared with the
committed curve in tests/golden/<workload>.json (rtol 1e-3); a change to the data pipeline,
the model, its initialisation or the loss shows up here. After an intended change, regenerate:

    ALGOPERF_UPDATE_GOLDEN=1 .venv/bin/python -m pytest tests/test_golden.py
"""

import json
import math
import os
from pathlib import Path

import pytest
import torch

from algoperf.errors import AlgoperfError
from algoperf.plugins import REPO_ROOT, list_workloads, workload_class
from algoperf.spec import ForwardPassMode

GOLDEN_DIR = Path(__file__).parent / "golden"
NUM_STEPS = 10
BATCH_SIZE = 32
LEARNING_RATE = 1e-3
# Data subsets that keep a workload's golden run fast (applied when the workload has the attribute).
SUBSETS = {"max_molecules": 1500}
REAL_WORKLOADS = sorted(
    name
    for name, entry in list_workloads().items()
    if Path(entry["folder"]).resolve().parent == (REPO_ROOT / "workloads").resolve()
    and "torch" in entry["frameworks"]
)


def first_losses(name: str) -> list[float]:
    torch.set_num_threads(1)
    workload = workload_class(name, "torch")("small")
    for attribute, value in SUBSETS.items():
        if hasattr(workload, attribute):
            setattr(workload, attribute, value)
    try:
        splits = workload.load_splits()
    except AlgoperfError as e:  # the dataset is not installed on this machine
        pytest.skip(str(e))
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
    return losses


def test_registry_has_the_suite():
    assert {"fashion_mnist", "shakespeare", "qm9"} <= set(REAL_WORKLOADS)


@pytest.mark.parametrize("name", REAL_WORKLOADS)
def test_first_losses_match_golden_curve(name, tmp_path, monkeypatch):
    monkeypatch.setenv("ALGOPERF_CACHE", str(tmp_path))  # subsets build a private cache
    losses = first_losses(name)
    path = GOLDEN_DIR / f"{name}.json"
    if os.environ.get("ALGOPERF_UPDATE_GOLDEN") == "1":
        GOLDEN_DIR.mkdir(exist_ok=True)
        path.write_text(
            json.dumps(
                {
                    "workload": name,
                    "size": "small",
                    "model_seed": 0,
                    "data_seed": 0,
                    "batch_size": BATCH_SIZE,
                    "optimizer": f"AdamW lr={LEARNING_RATE} weight_decay=0",
                    "threads": 1,
                    "torch": torch.__version__,
                    "losses": losses,
                },
                indent=2,
            )
            + "\n"
        )
    if not path.is_file():
        pytest.fail(f"no golden curve {path}; create it with ALGOPERF_UPDATE_GOLDEN=1")
    golden = json.loads(path.read_text())["losses"]
    assert len(golden) == NUM_STEPS
    assert losses == pytest.approx(golden, rel=1e-3), f"{name}: losses moved from the golden curve"
    assert all(math.isfinite(x) for x in losses) and len(set(losses)) == NUM_STEPS
