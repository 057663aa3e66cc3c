#!/usr/bin/env bash
# The main job: a small leaderboard sweep of the baselines on the CPU workloads, then the score.
# Each baseline runs its best known configuration (ruleset=self: the search space's defaults,
# one trial per study), two trials side by side on a 2-core machine. Re-running resumes.
set -euo pipefail
cd "$(dirname "$0")/.."
SWEEP="${SWEEP:-demo}"
# Build the QM9 graph cache once (RDKit, ~2-3 minutes) before trials start needing it.
.venv/bin/python -c "from algoperf.plugins import workload_class as w; w('qm9', 'torch')().load_splits()"
.venv/bin/algoperf sweep \
  workloads=[fashion_mnist,shakespeare,qm9] \
  submissions=[adamw,nadamw,lion,lamb,sgd_nesterov] \
  ruleset=self num_studies=1 sweep="$SWEEP" "$@"
.venv/bin/algoperf score "results/$SWEEP"
