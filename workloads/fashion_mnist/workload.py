"""Fashion-MNIST: 28x28 grey images of clothing, 10 classes; metric = validation accuracy.

Data: the official 60k train / 10k test files (idx format). The test split is the official 10k;
the validation split is 5,000 images carved from the train set by a fixed permutation, so the
split never depends on a trial's seed.

Files are read from, in order: `$ALGOPERF_DATA/fashion_mnist/`, then Debian's package
`dataset-fashion-mnist` (`/usr/share/datasets/fashion-mnist/`).

Target and budget (`small` size, `cpu` profile, 2-core CPU, torch 2.13):
see TARGET_SETTING below; the figures were measured by AdamW runs (see below).
"""

from __future__ import annotations

import gzip
import os
from pathlib import Path
from typing import Any

import numpy as np

from algoperf.datacache import cache_root, cached_arrays, files_sha256
from algoperf.errors import AlgoperfError
from algoperf.spec import Batch, LossType
from algoperf.workload import DataSplits, Workload, WorkloadSize

FILES = {
    "train_images": "train-images-idx3-ubyte.gz",
    "train_labels": "train-labels-idx1-ubyte.gz",
    "test_images": "t10k-images-idx3-ubyte.gz",
    "test_labels": "t10k-labels-idx1-ubyte.gz",
}
DEBIAN_DIR = Path("/usr/share/datasets/fashion-mnist")
NUM_VALIDATION = 5_000
SPLIT_SEED = 20170825  # Fashion-MNIST's release date: fixed, never a trial seed
# Per-channel statistics of the 60k train images, so inputs are roughly zero-mean unit-variance.
PIXEL_MEAN, PIXEL_STD = 0.2860, 0.3530

TARGET_SETTING = """
small (cpu profile; torch 2.13, one thread per trial, two such jobs side by side):
    algoperf set-targets fashion_mnist --configs 5 --seeds 3 --loosen 0.03
  search, 400 steps each (cosine horizon = step_hint), evals every 50 steps; best validation
  accuracy: AdamW defaults (lr 3e-3, 1-b1 0.1, b2 0.999, wd 0.05, warmup 5%) 0.8606; lr 2.8e-3,
  1-b1 0.07, b2 0.99, wd 0.015: 0.8584; lr 2.8e-4: 0.7446; two more points below. Best: the
  defaults. Over 3 seeds: 0.8606, 0.8504, 0.8498; median 0.8504, -3% and rounded down: target
  0.82, met at steps 200, 250, 250 in 7.7, 8.7 and 8.6 s of submission time (35 ms a step):
  budget 3 x 8.6 s, rounded up to 30 s; step_hint 400. The 3% slack puts the target where the
  tuned reference is at about 60% of its training length, so other algorithms can reach it
  sooner or later: in study 0 of an external-tuning sweep of the five baselines (stop at target
  off) all five reached 0.82, the slowest 1.41x the fastest's time.
  The size: a stride-2 stem (every feature map 14x14 or less) and channels (8, 16, 32), a
  sixth of the medium size's step cost.
medium (cpu_medium profile; the cpu profile's size until the small one; one thread per trial,
torch 2.13 / jax 0.10.2 on the 2-core machine):
AdamW at its search-space defaults (lr 3e-3, 1-beta1 0.1, beta2 0.999, wd 0.05, warmup 5%,
cosine to step_hint=800), three runs (torch seed 0; jax seeds 0 and 1; the frameworks' curves
agree within 0.002 at every eval). Best validation accuracy: 0.8766, 0.8748, 0.8780 (median
0.8766); every run first met 0.87 at step 750 (torch: 182 s submission time). Target = 0.87
(median best, loosened so the tuned run reliably reaches it); budget = 300 s torch (1.6x),
750 s jax (its steps take 2.5x as long on CPU). The tuned baselines' best accuracies at 800
steps (benchmarks, same machine): NAdamW 0.893, LAMB 0.883, Lion 0.878, SGD-Nesterov 0.878
(seed 0; 0.859 with seed 1, see submissions/sgd_nesterov/search_space.yaml).
gelu variant, small: algoperf set-targets fashion_mnist_gelu --configs 1 --seeds 3 --loosen 0.03
  (the AdamW defaults, 3 seeds): best 0.8694, 0.8542, 0.8574; median 0.8574: target 0.83, met
  at steps 200, 250, 300 (8.2, 10.3, 11.1 s; budget 30 s as the base). Medium: the base target.
large: not yet measured on a GPU (targets are placeholders until `set-targets` runs there).
"""


def data_dir_candidates(data_dir: str | None = None) -> list[Path]:
    candidates = []
    if data_dir:
        candidates.append(Path(data_dir) / "fashion_mnist")
        candidates.append(Path(data_dir))
    if os.environ.get("ALGOPERF_DATA"):
        candidates.append(Path(os.environ["ALGOPERF_DATA"]) / "fashion_mnist")
    candidates.append(DEBIAN_DIR)
    return candidates


def find_data_dir(data_dir: str | None = None) -> Path:
    candidates = data_dir_candidates(data_dir)
    for candidate in candidates:
        if all((candidate / name).is_file() for name in FILES.values()):
            return candidate
    raise AlgoperfError(
        "Fashion-MNIST files not found (looked in: "
        + ", ".join(str(c) for c in candidates)
        + "). Install them with `sudo apt-get update && sudo apt-get install dataset-fashion-mnist`, "
        "or put the four files "
        + ", ".join(FILES.values())
        + " (from https://github.com/zalandoresearch/fashion-mnist) in $ALGOPERF_DATA/fashion_mnist/."
    )


def read_idx(path: Path) -> np.ndarray:
    """Read an idx file (the MNIST format): magic, dims, then big-endian uint8 data."""
    with gzip.open(path, "rb") as f:
        raw = f.read()
    ndim = raw[3]
    shape = tuple(int.from_bytes(raw[4 + 4 * i : 8 + 4 * i], "big") for i in range(ndim))
    data = np.frombuffer(raw, dtype=np.uint8, offset=4 + 4 * ndim)
    if data.size != int(np.prod(shape)):
        raise AlgoperfError(f"{path} is truncated or damaged; reinstall the dataset files.")
    return data.reshape(shape)


def normalise(images: np.ndarray) -> np.ndarray:
    """uint8 (N, 28, 28) -> float32 (N, 1, 28, 28), standardised. NCHW for both frameworks.
    One table lookup per pixel (the table holds the same float32 arithmetic for each of the
    256 values): a third of the time of computing it per pixel."""
    return PIXEL_TABLE[images][:, None, :, :]


PIXEL_TABLE = (np.arange(256, dtype=np.uint8).astype(np.float32) / 255.0 - PIXEL_MEAN) / PIXEL_STD


def read_files(directory: Path) -> dict[str, np.ndarray]:
    """The four idx files as uint8 arrays, decoded once and then memory-mapped from the cache
    (gzip decoding took 0.4 s of every trial's start)."""
    paths = [directory / FILES[name] for name in FILES]
    folder = cache_root() / "fashion_mnist" / files_sha256(paths)[:16]
    return cached_arrays(
        folder, tuple(FILES), lambda: {name: read_idx(directory / FILES[name]) for name in FILES}
    )


SMALL_OPTIONS = {"channels": (8, 16, 32), "stem_stride": 2}
MEDIUM_OPTIONS = {"channels": (16, 32, 64)}
# The GPU size: wider stages, bf16 mixed precision (tensor cores; float32 parameters and loss).
LARGE_OPTIONS = {"channels": (64, 128, 256), "precision": "bfloat16"}


class FashionMnistWorkload(Workload):
    name = "fashion_mnist"
    input_layers = ("features.0",)
    output_layers = ("head",)
    metric_name = "accuracy"
    metric_higher_is_better = True
    loss_type = LossType.SOFTMAX_CROSS_ENTROPY
    default_batch_size = 128
    # 250 images per eval batch: on one CPU thread the 5,000-image validation pass took 3.7 s
    # in batches of 128-250 vs 7.0 s in batches of 1,000 (activations of 1,000 images overflow
    # the caches); JAX took the same time either way.
    eval_batch_size = 250
    num_classes = 10
    activation = "relu"
    # model_fn(..., dropout_rate=p): dropout on the pooled features before the linear head.
    supports_dropout = True
    sizes = {
        # small (the cpu profile's): channels per stage, and a stride-2 stem so every feature
        # map is 14x14 or less; it reaches its target in about 10 s on one core.
        "small": WorkloadSize(target=0.82, step_hint=400, options=SMALL_OPTIONS),
        # medium (the cpu_medium profile's): full-resolution stem, ~2.5 minutes on one core.
        "medium": WorkloadSize(target=0.87, step_hint=800, options=MEDIUM_OPTIONS),
        "large": WorkloadSize(target=0.93, step_hint=6000, options=LARGE_OPTIONS),
    }

    @classmethod
    def data_locations(cls, data_dir: str | None = None) -> list[Path]:
        return super().data_locations(data_dir) + data_dir_candidates(data_dir)

    def load_splits(self) -> DataSplits:
        arrays = read_files(find_data_dir(self.data_dir))
        train_images, train_labels = arrays["train_images"], arrays["train_labels"]
        test_images, test_labels = arrays["test_images"], arrays["test_labels"]
        order = np.random.default_rng(SPLIT_SEED).permutation(len(train_images))
        val_idx, train_idx = order[:NUM_VALIDATION], order[NUM_VALIDATION:]

        def split(images: np.ndarray, labels: np.ndarray) -> dict[str, np.ndarray]:
            return {"inputs": normalise(images), "targets": labels.astype(np.int64)}

        self._num_train_examples = len(train_idx)
        return DataSplits(
            train=split(train_images[train_idx], train_labels[train_idx]),
            validation=split(train_images[val_idx], train_labels[val_idx]),
            test=split(test_images, test_labels),
        )

    def batch_sums(self, outputs: Any, batch: Batch) -> dict[str, Any]:
        weights = batch["weights"]
        correct = self.xp.asarray(outputs.argmax(-1) == batch["targets"], dtype=self.xp.float32)
        return {
            "loss": self.loss_fn(batch["targets"], outputs, weights)["summed"],
            self.metric_name: (correct * weights).sum(),
            "count": weights.sum(),
        }


class FashionMnistGeluWorkload(FashionMnistWorkload):
    """Variant: GELU instead of ReLU everywhere."""

    variant = "gelu"
    activation = "gelu"
    sizes = {
        "small": WorkloadSize(target=0.83, step_hint=400, options=SMALL_OPTIONS),
        "medium": WorkloadSize(target=0.87, step_hint=800, options=MEDIUM_OPTIONS),
        "large": WorkloadSize(target=0.93, step_hint=6000, options=LARGE_OPTIONS),
    }
