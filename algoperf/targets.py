"""Set a workload's target, step hint and budget by a reproducible procedure (any workload).

1. Search: the submission's defaults plus `--configs` - 1 points of its scrambled-Halton search
   space (study 0), each trained for exactly `step_hint` steps (the schedule's horizon) without
   stopping at the current target, so every trial reports the best validation metric it reaches.
2. Repeat the best configuration over `--seeds` root seeds (the search run counts as seed 0).
3. target = median over seeds of the best validation metric, loosened by `--loosen` (relative)
   and rounded outwards to `--decimals`, so that the tuned configuration reliably reaches it.
4. From each seed's eval log: the first eval that meets the target gives the steps and the
   submission time to target; budget = `--budget-factor` x median time, and the suggested
   step_hint = median steps to target.

    .venv/bin/algoperf set-targets shakespeare --configs 4 --seeds 3 --threads 1

Trials run in this process through `algoperf.runner.run_trial` (results under
`--results-dir`, resumable: complete trials are reused). The figures are printed at the end
with a hardware-profile snippet; copy them into the workload's `sizes` and the profile.
"""

from __future__ import annotations

import argparse
import dataclasses
import math
import statistics
from pathlib import Path
from typing import Any

import pandas as pd

from algoperf.config import compose
from algoperf.plugins import workload_class
from algoperf.results import EVALS_NAME, TrialKey, trial_dir
from algoperf.runner import run_trial
from algoperf.schema import HardwareConfig, RunConfig


def hardware_profile(name: str, workload: str, size: str, eval_every_steps: int | None) -> HardwareConfig:
    """The profile with a provisional entry for the workload (it may not be listed yet)."""
    overrides = [f"workload={workload}", "submission=adamw", f"hardware={name}"]
    profile = compose(overrides).hardware
    entries = dict(profile.workloads)
    entry = dict(entries.get(workload) or {})
    entry.update(size=size, max_submission_time_s=1e9)
    if eval_every_steps:
        entry["eval_every_steps"] = eval_every_steps
    elif not entry.get("eval_every_steps"):
        entry["eval_every_steps"] = 100
    entry.pop("eval_period_s", None)  # step-based evals: the same steps on any machine
    entries[workload] = entry
    return dataclasses.replace(profile, workloads=entries)


def first_reaching(directory: Path, target: float, higher_is_better: bool) -> tuple[int, float] | None:
    """(steps, submission seconds) of the first eval meeting the target, or None."""
    evals = pd.read_csv(directory / EVALS_NAME)
    metric = evals["validation_metric"]
    hits = evals[metric >= target] if higher_is_better else evals[metric <= target]
    if hits.empty:
        return None
    row = hits.iloc[0]
    return int(row["step"]), float(row["submission_time_s"])


def loosened_target(median: float, loosen: float, decimals: int, higher_is_better: bool) -> float:
    scale = 10.0**decimals
    if higher_is_better:
        return math.floor(median * (1 - loosen) * scale) / scale
    return math.ceil(median * (1 + loosen) * scale) / scale


def main(argv: list[str] | None = None) -> dict[str, Any]:
    parser = argparse.ArgumentParser(prog="algoperf set-targets", description=__doc__.split("\n")[0])
    parser.add_argument("workload")
    parser.add_argument("--submission", default="adamw")
    parser.add_argument("--framework", default="torch")
    parser.add_argument("--hardware", default="cpu")
    parser.add_argument("--size", default=None, help="default: the profile's size")
    parser.add_argument("--configs", type=int, default=8, help="defaults + Halton points")
    parser.add_argument("--seeds", type=int, default=5)
    parser.add_argument("--step-hint", type=int, default=None, help="training length (steps)")
    parser.add_argument("--eval-every", type=int, default=None)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--loosen", type=float, default=0.01, help="relative slack on the target")
    parser.add_argument("--decimals", type=int, default=2)
    parser.add_argument("--budget-factor", type=float, default=3.0)
    parser.add_argument("--results-dir", default="results/set_targets")
    parser.add_argument("--data-dir", default=None)
    args = parser.parse_args(argv)

    cls = workload_class(args.workload, args.framework)
    overrides = [f"workload={args.workload}", "submission=adamw", f"hardware={args.hardware}"]
    profile_entry = compose(overrides).hardware.workloads.get(args.workload, {})
    size = args.size or profile_entry.get("size", "small")
    step_hint = args.step_hint or cls.sizes[size].step_hint
    profile = hardware_profile(args.hardware, args.workload, size, args.eval_every)
    better = max if cls.metric_higher_is_better else min

    def trial(sweep: str, trial_index: int | None, seed: int, hparams: dict[str, Any]) -> dict:
        cfg = RunConfig(
            workload=args.workload,
            submission=args.submission,
            framework=args.framework,
            trial=trial_index,
            seed=seed,
            hardware=profile,
            results_dir=args.results_dir,
            sweep=sweep,
            hparams=hparams,
            max_steps=step_hint,
            max_submission_time_s=1e9,
            stop_at_target=False,
            step_hint=step_hint,
            threads=args.threads,
            data_dir=args.data_dir,
        )
        record = run_trial(cfg, progress=False)
        key = TrialKey(sweep, record["submission"], args.workload, args.framework, 0, record["trial"])
        directory = trial_dir(args.results_dir, key)
        best = record["best_validation"]
        print(
            f"  {sweep:<28} seed {seed}  {record['status']:<16} best {best}  "
            f"{record['global_steps']} steps {record['submission_time_s']:.0f} s  "
            f"hparams {record['hparams']}",
            flush=True,
        )
        return {**record, "directory": directory}

    name = f"{args.workload}_{size}_h{step_hint}"
    print(f"search: {args.configs} configurations x {step_hint} steps on {args.workload} ({size})")
    search = [trial(f"{name}_defaults", None, 0, {})]
    search += [trial(f"{name}_search", k, 0, {}) for k in range(args.configs - 1)]
    finished = [
        r for r in search if r["best_validation"] is not None and r["status"] not in ("failed", "diverged")
    ]
    if not finished:
        raise SystemExit("every search trial failed; see their records")
    best_run = better(finished, key=lambda r: r["best_validation"])
    best_hparams = dict(best_run["hparams"])
    print(f"best configuration: {best_hparams} ({best_run['best_validation']:.4f})")
    seeds = [best_run] + [trial(f"{name}_best_seed{s}", None, s, best_hparams) for s in range(1, args.seeds)]

    bests = [r["best_validation"] for r in seeds]
    median = statistics.median(bests)
    target = loosened_target(median, args.loosen, args.decimals, cls.metric_higher_is_better)
    reached = [first_reaching(r["directory"], target, cls.metric_higher_is_better) for r in seeds]
    hits = [x for x in reached if x is not None]
    median_steps = statistics.median(s for s, _ in hits) if hits else None
    median_time_s = statistics.median(t for _, t in hits) if hits else None
    budget_s = math.ceil(args.budget_factor * median_time_s / 10) * 10 if hits else None
    step_time_ms = statistics.median(1000 * r["submission_time_s"] / max(1, r["global_steps"]) for r in seeds)
    figures = {
        "workload": args.workload,
        "size": size,
        "step_hint_trained": step_hint,
        "best_hparams": best_hparams,
        "best_validation_per_seed": bests,
        "median_best_validation": median,
        "target": target,
        "seeds_reaching_target": f"{len(hits)}/{len(seeds)}",
        "steps_to_target_per_seed": [x and x[0] for x in reached],
        "time_to_target_s_per_seed": [x and round(x[1], 1) for x in reached],
        "median_steps_to_target": median_steps,
        "median_time_to_target_s": median_time_s,
        "median_step_time_ms": round(step_time_ms, 1),
        "budget_s": budget_s,
        "threads": args.threads,
        "search": [(r["hparams"], r["best_validation"]) for r in search],
    }
    print("\nfigures:")
    for key, value in figures.items():
        print(f"  {key}: {value}")
    if hits:
        print(
            f"\nworkload size:  WorkloadSize(target={target}, step_hint={step_hint}, ...)"
            f"   # median steps to target {median_steps}"
        )
        print(
            f"profile ({args.hardware}):\n  {args.workload}:\n    size: {size}\n"
            f"    max_submission_time_s: {budget_s}\n"
            f"    eval_every_steps: {profile.workloads[args.workload]['eval_every_steps']}"
        )
    return figures


if __name__ == "__main__":
    main()
