#!/usr/bin/env bash
# Run the test suite (after scripts/setup.sh). Extra arguments go to pytest.
set -euo pipefail
cd "$(dirname "$0")/.."
export WANDB_MODE=disabled
export PYTHONUNBUFFERED=1
.venv/bin/python -m pytest -q -p no:cacheprovider "$@"
