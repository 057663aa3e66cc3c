"""Share of wall time spent in evaluation, per workload and framework, from real trial records.

    .venv/bin/python benchmarks/eval_share.py results/demo         # an existing sweep's records
    .venv/bin/python benchmarks/eval_share.py --run                # run the trials first

Reads every record under the folder (e.g. the README's main sweep) and prints, per workload and
framework, the median of eval_time_s / wall_time_s at the profile's eval schedule (goal <= 10%).
With --run it first runs one AdamW trial per workload and framework (defaults, the `cpu`
profile's budgets and eval schedule, one thread, stopping at the target) into a temporary
folder, so the figure needs no earlier sweep.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile

from algoperf.results import load


def run_trials(results_dir: str, workloads: list[str], frameworks: list[str]) -> None:
    for framework in frameworks:
        for workload in workloads:
            command = [
                sys.executable,
                "-m",
                "algoperf.cli",
                "run",
                f"workload={workload}",
                "submission=adamw",
                f"framework={framework}",
                "threads=1",
                f"results_dir={results_dir}",
                "sweep=eval_share",
                "progress=false",
            ]
            print("running", " ".join(command[3:]), flush=True)
            subprocess.run(command, check=True, stdout=subprocess.DEVNULL)


def report(results_dir: str) -> None:
    trials = load(results_dir).trials
    trials = trials[trials["num_evals"] > 0]
    trials = trials.assign(
        eval_share=trials["eval_time_s"] / trials["wall_time_s"],
        eval_s_per_eval=trials["eval_time_s"] / trials["num_evals"],
    )
    table = trials.groupby(["workload", "framework"]).agg(
        trials=("eval_share", "size"),
        eval_share=("eval_share", "median"),
        eval_s_per_eval=("eval_s_per_eval", "median"),
        evals=("num_evals", "median"),
    )
    print(table.to_string(float_format=lambda v: f"{v:.3f}"))
    print(f"median eval share over all trials: {trials['eval_share'].median():.1%} (goal <= 10%)")


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("results_dir", nargs="?", default="results/demo")
    parser.add_argument("--run", action="store_true", help="run one AdamW trial per workload first")
    parser.add_argument("--workloads", nargs="+", default=["fashion_mnist", "shakespeare", "qm9"])
    parser.add_argument("--frameworks", nargs="+", default=["torch"])
    args = parser.parse_args()
    if not args.run:
        report(args.results_dir)
        return
    with tempfile.TemporaryDirectory() as tmp:
        run_trials(tmp, args.workloads, args.frameworks)
        report(tmp)


if __name__ == "__main__":
    main()
