#!/usr/bin/env bash
# The main job: one AdamW trial on Fashion-MNIST with the search space's best known point.
set -euo pipefail
cd "$(dirname "$0")/.."
.venv/bin/algoperf run workload=fashion_mnist submission=adamw sweep=demo
