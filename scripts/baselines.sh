#!/usr/bin/env bash
# The baseline leaderboard of the CPU tier (results/baselines-cpu.md): every baseline in
# submissions/ with its search space's defaults under the self-tuning ruleset (no tuning, 1.5x
# the budget), 3 studies, on the three CPU workloads, two trials side by side, then the score.
# Re-running resumes; SWEEP=name picks another results folder.
set -euo pipefail
cd "$(dirname "$0")/.."
SWEEP="${SWEEP:-baselines-self}"
START=$(date +%s)
BASELINES=$(find submissions -mindepth 1 -maxdepth 1 -type d ! -name template -printf '%f\n' | sort | paste -sd, -)
COMMAND="algoperf sweep workloads=[fashion_mnist,shakespeare,qm9] submissions=[$BASELINES] ruleset=self num_studies=3 sweep=$SWEEP"
.venv/bin/python -c "from algoperf.plugins import workload_class as w; w('qm9', 'torch')().load_splits()"
# shellcheck disable=SC2086
.venv/bin/$COMMAND "$@"
.venv/bin/algoperf score "results/$SWEEP"
ELAPSED=$(( $(date +%s) - START ))
# The sweep's own span, from its records (a resumed sweep ran in more than one go).
SPAN=$(.venv/bin/python - "results/$SWEEP" <<'PY'
import datetime as dt
import sys

from algoperf import results

trials = results.load(sys.argv[1]).trials
first, last = trials["started_at"].map(str).min(), trials["ended_at"].map(str).max()
seconds = (dt.datetime.fromisoformat(last) - dt.datetime.fromisoformat(first)).total_seconds()
print(f"{len(trials)} trials in {int(seconds // 60)} min {int(seconds % 60)} s of sweep wall time")
PY
)
{
  echo "# Baseline leaderboard, CPU tier (self-tuning: each baseline's defaults)"
  echo
  echo "Made by \`bash scripts/baselines.sh\` (= \`$COMMAND\`, then \`algoperf score results/$SWEEP\`),"
  echo "on $(date -u +%Y-%m-%d), $(nproc) cores, $(uname -m), torch $(.venv/bin/python -c 'import torch; print(torch.__version__)'):"
  echo "$SPAN (first trial started to last trial ended), two trials side by side, nothing else running."
  echo "Every baseline in \`submissions/\` with its search space's defaults (no tuning, 1.5x the budget), three studies"
  echo "(three seeds) per workload, the workloads' \`small\` sizes, PyTorch. Trials end at the target, at the end of the"
  echo "baseline's schedule (\`training_steps\`: the step hint) or at the budget."
  echo
  tail -n +2 "results/$SWEEP/leaderboard.md"
} > results/baselines-cpu.md
echo "results/baselines-cpu.md written; report: results/$SWEEP/report.html"
echo "scripts/baselines.sh took $((ELAPSED / 60)) min $((ELAPSED % 60)) s."
