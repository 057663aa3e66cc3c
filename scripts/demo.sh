#!/usr/bin/env bash
# The main job: the AdamW, Lion and LAMB baselines under the external-tuning protocol (one study
# of 5 quasi-random trials per workload) on the three CPU workloads, two trials side by side,
# then the score: leaderboard, performance profile, curves and report. Re-running resumes.
set -euo pipefail
cd "$(dirname "$0")/.."
SWEEP="${SWEEP:-demo}"
START=$(date +%s)
# Build the QM9 graph cache once (RDKit, ~2-3 minutes) before trials start needing it.
.venv/bin/python -c "from algoperf.plugins import workload_class as w; w('qm9', 'torch')().load_splits()"
.venv/bin/algoperf sweep \
  workloads=[fashion_mnist,shakespeare,qm9] \
  submissions=[adamw,lion,lamb] \
  ruleset=external num_studies=1 num_trials=5 sweep="$SWEEP" "$@"
.venv/bin/algoperf score "results/$SWEEP"
ELAPSED=$(( $(date +%s) - START ))
echo
echo "Report: results/$SWEEP/report.html (open it in a browser); leaderboard.md, profile.png and curves.png are beside it."
echo "make demo took $((ELAPSED / 60)) min $((ELAPSED % 60)) s."
