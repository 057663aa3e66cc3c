"""Share of wall time spent in evaluation, per workload and framework, from real trial records.

    .venv/bin/python benchmarks/eval_share.py results/demo

Reads every record under the folder (e.g. the README's main sweep) and prints, per workload and
framework, the median of eval_time_s / wall_time_s at the profile's eval schedule (goal <= 10%).
"""

from __future__ import annotations

import argparse

from algoperf.results import load


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("results_dir", nargs="?", default="results/demo")
    args = parser.parse_args()
    trials = load(args.results_dir).trials
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


if __name__ == "__main__":
    main()
