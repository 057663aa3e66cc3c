"""Sweep throughput: trials per hour, sequential vs the local parallel launcher.

Runs the same sweep twice into temporary folders — once one trial at a time with every core,
once with `n_jobs` trials in parallel with cores/n_jobs threads each — and prints trials/hour
and the speed-up (goal >= 1.6x on 2 cores). By default the trials are the README's main sweep
capped at --max-steps steps each, so the comparison takes minutes, not the whole demo twice.

    .venv/bin/python benchmarks/sweep_throughput.py --max-steps 150
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time


def run_sweep(args: argparse.Namespace, n_jobs: int, results_dir: str) -> float:
    command = [
        sys.executable,
        "-m",
        "algoperf.cli",
        "sweep",
        f"workloads=[{','.join(args.workloads)}]",
        f"submissions=[{','.join(args.submissions)}]",
        f"num_studies={args.num_studies}",
        f"num_trials={args.num_trials}",
        f"n_jobs={n_jobs}",
        f"threads={max(1, (os.cpu_count() or 1) // n_jobs)}",  # every core busy either way
        f"results_dir={results_dir}",
        "sweep=throughput",
        f"max_steps={args.max_steps}",
        "max_submission_time_s=100000",
    ]
    start = time.perf_counter()
    subprocess.run(command, check=True, stdout=subprocess.DEVNULL)
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--workloads", nargs="+", default=["fashion_mnist", "shakespeare", "qm9"])
    parser.add_argument("--submissions", nargs="+", default=["adamw", "nadamw"])
    parser.add_argument("--num-studies", type=int, default=1)
    parser.add_argument("--num-trials", type=int, default=2)
    parser.add_argument("--max-steps", type=int, default=150)
    parser.add_argument("--n-jobs", type=int, default=os.cpu_count() or 2)
    args = parser.parse_args()
    trials = len(args.workloads) * len(args.submissions) * args.num_studies * args.num_trials
    with tempfile.TemporaryDirectory() as a, tempfile.TemporaryDirectory() as b:
        sequential_s = run_sweep(args, 1, a)
        parallel_s = run_sweep(args, args.n_jobs, b)
    print(f"{trials} trials of at most {args.max_steps} steps, {os.cpu_count()} cores")
    print(
        f"sequential (1 job x {os.cpu_count()} threads): {trials / sequential_s * 3600:.0f} trials/hour "
        f"({sequential_s:.0f} s)"
    )
    print(
        f"parallel ({args.n_jobs} jobs x {max(1, (os.cpu_count() or 1) // args.n_jobs)} threads): "
        f"{trials / parallel_s * 3600:.0f} trials/hour ({parallel_s:.0f} s)"
    )
    print(f"speed-up {sequential_s / parallel_s:.2f}x (goal >= 1.6x)")


if __name__ == "__main__":
    main()
