"""Wall time of the fair protocol on the CPU workloads: the main job, and a new submission's
full external-tuning score next to it.

1. `make demo` (scripts/demo.sh): the demo baselines under ruleset=external, one study of
   5 quasi-random trials per workload on the three CPU workloads, then `algoperf score`.
2. A new submission's full score (3 studies x 5 trials x 3 workloads = 45 trials) added to a
   sweep that already holds baselines run the same way (a copy of the sweep folder
   `--reference`, under results/<prefix>-<k>/: a score compares equal numbers of studies, so
   the baselines there have 3), then `algoperf score` of the whole sweep.

Each repeat uses fresh sweep names (results/<prefix>-<k>, and results/<prefix>-<k>-new/ for the copy), so no
trial is reused; set-up and the data caches are assumed done (`make setup`, and one earlier
run for the caches). Prints each run's wall time and, over the repeats, the median and range.

    .venv/bin/python benchmarks/protocol_time.py --repeats 3 \\
        --reference results/baselines-3/protocol-a-0 --new-submission adamw
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
WORKLOADS = "[fashion_mnist,shakespeare,qm9]"


def timed(command: list[str], env: dict[str, str]) -> float:
    start = time.perf_counter()
    subprocess.run(command, cwd=ROOT, env=env, check=True, stdout=subprocess.DEVNULL)
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--new-submission", default="adamw")
    parser.add_argument("--reference", help="a sweep folder holding baselines with 3 studies")
    parser.add_argument("--prefix", default="protocol")
    parser.add_argument("--skip-demo", action="store_true", help="time the new submission only")
    args = parser.parse_args()
    algoperf = str(ROOT / ".venv" / "bin" / "algoperf")
    demo_times, new_times = [], []
    for k in range(args.repeats):
        sweep = f"{args.prefix}-{k}"
        env = {**os.environ, "SWEEP": sweep}
        if not args.skip_demo:
            demo = timed(["bash", "scripts/demo.sh"], env)
            demo_times.append(demo)
            print(f"run {k}: make demo (sweep {sweep}) {demo / 60:.2f} min", flush=True)
        if not args.reference:
            continue
        reference = Path(args.reference).resolve()
        results_dir = ROOT / "results" / f"{sweep}-new"
        shutil.copytree(reference, results_dir / reference.name)  # the records name their sweep
        start = time.perf_counter()
        timed(
            [
                algoperf,
                "sweep",
                f"workloads={WORKLOADS}",
                f"submissions=[{args.new_submission}]",
                "ruleset=external",
                "num_studies=3",
                "num_trials=5",
                f"sweep={reference.name}",
                f"results_dir={results_dir}",
            ],
            env,
        )
        timed([algoperf, "score", str(results_dir / reference.name)], env)
        new = time.perf_counter() - start
        new_times.append(new)
        print(f"run {k}: {args.new_submission}, 45 trials + score {new / 60:.2f} min", flush=True)
    for name, times in (("make demo", demo_times), (f"new submission ({args.new_submission})", new_times)):
        if times:
            minutes = [t / 60 for t in times]
            print(
                f"{name}: median {statistics.median(minutes):.2f} min, range "
                f"{min(minutes):.2f}-{max(minutes):.2f} min over {len(minutes)} runs "
                f"({', '.join(f'{m:.2f}' for m in minutes)})"
            )


if __name__ == "__main__":
    sys.exit(main())
