"""Real MLCommons AlgoPerf submissions, as they are, on every CPU workload: does each pass
`algoperf check` and finish a short trial, and what does its first step cost (compilation
included) next to the harness's own NAdamW plugin?

    .venv/bin/python benchmarks/algoperf_submissions.py PATH [PATH ...] [--steps 20]

PATH is an AlgoPerf submission folder (`submission.py` + `tuning_search_space.json`) or file,
e.g. from a clone of github.com/mlcommons/algorithmic-efficiency (algorithms/baselines/...) or
github.com/mlcommons/submissions_algorithms (submissions/..., previous_leaderboards/...).
Each runs `--steps` steps per workload (trial 0 of its search space, one thread, evaluation at
the end) in its own framework; the last table is the figure: status, steps, submission time,
timed compilation and the harness's adaptations, per submission and workload.
"""

from __future__ import annotations

import argparse
import tempfile

from algoperf.check import check_submission
from algoperf.plugins import find_submission
from algoperf.runner import run_trial
from algoperf.schema import HardwareConfig, RunConfig

WORKLOADS = ("fashion_mnist", "shakespeare", "qm9")


def short_trial(submission: str, workload: str, framework: str, steps: int, results_dir: str) -> dict:
    hardware = HardwareConfig(
        name="compat",
        workloads={workload: {"size": "small", "max_submission_time_s": 3600, "eval_every_steps": steps}},
    )
    cfg = RunConfig(
        workload=workload,
        submission=submission,
        framework=framework,
        hardware=hardware,
        results_dir=results_dir,
        sweep="compat",
        trial=0 if submission != "nadamw" else None,
        max_steps=steps,
        threads=1,
        progress=False,
    )
    return run_trial(cfg, progress=False)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("paths", nargs="+")
    parser.add_argument("--steps", type=int, default=20)
    parser.add_argument("--workloads", nargs="+", default=list(WORKLOADS))
    args = parser.parse_args()
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for path in args.paths:
            source = find_submission(path)
            framework = source.default_framework
            checked = check_submission(path, framework, workload=args.workloads[0])
            for workload in args.workloads:
                record = short_trial(path, workload, framework, args.steps, tmp)
                rows.append((source.name, framework, workload, checked, record))
        # The harness's own NAdamW in each framework met, for the compile-time comparison.
        for framework in sorted({row[1] for row in rows}):
            for workload in args.workloads:
                record = short_trial("nadamw", workload, framework, args.steps, tmp)
                rows.append(("nadamw (harness plugin)", framework, workload, True, record))
    print()
    columns = ["submission", "framework", "workload", "check", "status", "steps"]
    columns += ["submission time (s)", "timed compile (s)", "adaptations"]
    print("| " + " | ".join(columns) + " |")
    print("|" + "---|" * len(columns))
    for name, framework, workload, checked, record in rows:
        cells = [name, framework, workload, "ok" if checked else "FAIL", record["status"]]
        cells += [record["global_steps"], f"{record['submission_time_s']:.1f}"]
        cells += [f"{record['compile_time_s']:.1f}", len(record.get("adaptations") or [])]
        print("| " + " | ".join(str(cell) for cell in cells) + " |")
    failed = [row for row in rows if row[4]["status"] == "failed" or not row[3]]
    for name, framework, workload, _, record in failed:
        print(f"\n{name} on {workload} ({framework}) failed:\n{record['error']}")


if __name__ == "__main__":
    main()
