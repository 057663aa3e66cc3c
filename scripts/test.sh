#!/usr/bin/env bash
# Run the test suite (after scripts/setup.sh). Extra arguments go to pytest (`-n 0`: one process).
#
# Two pytest workers, one test file each at a time (--dist loadfile): a file's tests share its
# module fixtures (initialised models, compiled steps), and a trial is a supervisor that mostly
# waits plus a one-thread worker, so two files side by side fill two cores the way a sweep's two
# trials do. TEST_WORKERS changes the count.
set -euo pipefail
cd "$(dirname "$0")/.."
export WANDB_MODE=disabled
export PYTHONUNBUFFERED=1
.venv/bin/python -m pytest -q -p no:cacheprovider -n "${TEST_WORKERS:-2}" --dist loadfile "$@"
