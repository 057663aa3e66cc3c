"""How fast `algoperf score` is on a big results folder: 10,000 synthetic trials by default.

Writes realistic trial folders (signed record.json + an evals.csv of ~10 evals each) into a
temporary folder, then times results.load (which checks every signature), scoring.score and the
report separately. The last line printed is the scoring time; the goal is under 3 s. Records are
signed with a throwaway key, or with --keep with the user's own (so `algoperf score DIR` works).

    .venv/bin/python benchmarks/score_speed.py [--trials 10000] [--keep DIR]
"""

from __future__ import annotations

import argparse
import csv
import hashlib
import io
import json
import math
import os
import shutil
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

from algoperf import report, results, scoring, signing

SUBMISSIONS = {  # name -> time factor against adamw
    "adamw": 1.0,
    "nadamw": 0.92,
    "lion": 1.12,
    "lamb": 1.3,
    "sgd_nesterov": 1.7,
    "schedule_free": 0.88,
    "shampoo": 0.8,
    "adafactor": 1.2,
    "sophia": 1.05,
    "adan": 0.97,
}
# name -> (target, higher_is_better, metric, start metric, base time s, step time s torch, jax)
WORKLOADS = {
    "fashion_mnist": (0.90, True, "accuracy", 0.10, 60.0, 0.085, 0.21),
    "fashion_mnist_gelu": (0.89, True, "accuracy", 0.10, 70.0, 0.09, 0.22),
    "shakespeare": (1.60, False, "cross_entropy", 4.2, 90.0, 0.12, 0.10),
    "shakespeare_post_ln": (1.65, False, "cross_entropy", 4.2, 100.0, 0.12, 0.10),
    "qm9": (0.35, False, "mae", 1.5, 45.0, 0.03, 0.02),
}
FRAMEWORKS = ("torch", "jax")
NUM_EVALS = 10
HARDWARE = {"fingerprint": "bench-fingerprint", "device": "cpu", "cpu": "Synthetic 2-core CPU"}


def _trial(
    rng: np.random.Generator, workload: str, framework: str, speed: float
) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    """One trial: the fields that vary, and its eval rows (stopping at the target)."""
    target, higher, _, start, base_s, step_torch, step_jax = WORKLOADS[workload]
    step_s = step_torch if framework == "torch" else step_jax
    budget_s = 3.0 * base_s
    quality = rng.uniform()  # how good this trial's hyperparameters are
    reach_s = base_s * speed * (1 + 2.5 * quality**2) * rng.lognormal(0, 0.12)
    diverged = rng.uniform() < 0.02
    period_s = budget_s / NUM_EVALS
    rows: list[dict[str, Any]] = []
    status, time_to_target, steps_to_target = "budget_exhausted", None, None
    for k in range(1, NUM_EVALS + 1):
        now = min(budget_s, k * period_s * rng.uniform(0.97, 1.03))  # the last eval is at the budget
        # Exponential approach to a plateau just past the target, crossing it at reach_s.
        plateau = target + 0.05 * (target - start)
        progress = 1 - math.exp(-now / reach_s * math.log(1.05 / 0.05))
        metric = start + (plateau - start) * progress
        step = int(now / step_s)
        rows.append(
            {
                "step": step,
                "submission_time_s": round(now, 3),
                "eval_time_s": round(0.4 * k, 3),
                "wall_time_s": round(now + 0.5 * k, 3),
                "train_loss": round(2.0 / (1 + progress * 4), 5),
                "validation_loss": round(2.1 / (1 + progress * 4), 5),
                "validation_metric": round(metric, 5),
                "test_loss": round(2.2 / (1 + progress * 4), 5),
                "test_metric": round(metric * 0.99, 5),
            }
        )
        if (rows[-1]["validation_metric"] >= target) if higher else (rows[-1]["validation_metric"] <= target):
            status, time_to_target, steps_to_target = "reached", rows[-1]["submission_time_s"], step
            break
        if diverged and k == 3:
            status = "diverged"
            break
    metrics = [r["validation_metric"] for r in rows]
    fields = {
        "status": status,
        "time_to_target_s": time_to_target,
        "steps_to_target": steps_to_target,
        "submission_time_s": rows[-1]["submission_time_s"],
        "eval_time_s": rows[-1]["eval_time_s"],
        "wall_time_s": rows[-1]["wall_time_s"],
        "global_steps": rows[-1]["step"],
        "max_submission_time_s": budget_s,
        "best_validation": max(metrics) if higher else min(metrics),
        "final_validation": metrics[-1],
        "num_evals": len(rows),
    }
    return fields, rows


def _evals_csv(rows: list[dict[str, Any]]) -> bytes:
    """evals.csv as EvalLog writes it."""
    text = io.StringIO(newline="")
    writer = csv.DictWriter(text, fieldnames=results.EVAL_FIELDS)
    writer.writeheader()
    writer.writerows(rows)
    return text.getvalue().encode()


def generate(
    root: Path,
    num_trials: int = 10_000,
    num_studies: int = 5,
    seed: int = 0,
) -> int:
    """Write about `num_trials` synthetic trial folders under `root`; returns how many."""
    key = signing.load_key()
    rng = np.random.default_rng(seed)
    cells = len(SUBMISSIONS) * len(WORKLOADS) * len(FRAMEWORKS) * num_studies
    trials_per_study = max(1, round(num_trials / cells))
    written = 0
    for submission, factor in SUBMISSIONS.items():
        for workload, spec in WORKLOADS.items():
            for framework in FRAMEWORKS:
                # frameworks differ per workload (README: the CNN is slower in JAX, the GNN faster)
                speed = factor * (spec[6] / spec[5] if framework == "jax" else 1.0) ** 0.5
                for study in range(num_studies):
                    for trial in range(trials_per_study):
                        fields, rows = _trial(rng, workload, framework, speed)
                        record = {
                            "schema_version": results.SCHEMA_VERSION,
                            "sweep": "bench",
                            "workload": workload,
                            "variant": workload.split("_", 2)[-1] if workload.count("_") > 1 else "base",
                            "framework": framework,
                            "submission": submission,
                            "ruleset": "external",
                            "hardware_profile": "cpu",
                            "study": study,
                            "trial": trial,
                            "seed": 1000 * study + trial,
                            "hparams": {"learning_rate": float(rng.uniform(1e-4, 1e-2))},
                            "compile_time_s": 0.0,
                            "param_transfer_s": 0.0,
                            "stop_at_target": True,
                            "submission_files": {},
                            "isolation": {},
                            "target": spec[0],
                            "metric_name": spec[2],
                            "metric_higher_is_better": spec[1],
                            "hardware": HARDWARE,
                            "software": {"python": "3.11", "algoperf": "0.1.0"},
                            "started_at": "2025-01-01T00:00:00Z",
                            "ended_at": "2025-01-01T00:05:00Z",
                            "error": None,
                            **fields,
                        }
                        for name in results.RECORD_FIELDS:
                            record.setdefault(name, None)
                        key = results.TrialKey("bench", submission, workload, framework, study, trial)
                        directory = results.trial_dir(root, key)
                        directory.mkdir(parents=True)
                        # write_record fsyncs every file; a benchmark need not survive a crash.
                        evals = _evals_csv(rows)
                        (directory / results.EVALS_NAME).write_bytes(evals)
                        record["evals_sha256"] = hashlib.sha256(evals).hexdigest()
                        (directory / results.RECORD_NAME).write_text(json.dumps(signing.sign(record, key)))
                        written += 1
    return written


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--trials", type=int, default=10_000)
    parser.add_argument("--keep", type=Path, default=None, help="write the folder here and keep it")
    args = parser.parse_args()
    # tmpfs where there is one: creating and deleting 80k folders on a disk mounted with
    # `discard` takes minutes, and the reads hit the page cache either way.
    scratch = "/dev/shm" if Path("/dev/shm").is_dir() else None
    root = args.keep or Path(tempfile.mkdtemp(prefix="algoperf-score-speed-", dir=scratch))
    key_folder = None
    if args.keep is None:  # a throwaway folder: sign it with a throwaway key, not the user's
        key_folder = tempfile.mkdtemp(prefix="algoperf-score-speed-key-")
        os.environ[signing.KEY_ENV] = os.path.join(key_folder, "record-signing.key")
    try:
        start = time.perf_counter()
        written = generate(root, args.trials)
        print(f"generated {written} trials in {time.perf_counter() - start:.1f} s under {root}")

        def timed(function, *args):
            wall, cpu = time.perf_counter(), time.process_time()
            value = function(*args)
            return value, time.perf_counter() - wall, time.process_time() - cpu

        loaded, load_s, load_cpu = timed(results.load, root)
        print(
            f"load:   {load_s:.2f} s (CPU {load_cpu:.2f} s)  {len(loaded.trials)} trials, "
            f"{len(loaded.evals)} evals"
        )
        scores, score_s, score_cpu = timed(scoring.score, loaded)
        print(
            f"score:  {score_s:.2f} s (CPU {score_cpu:.2f} s)  {len(scores.leaderboard)} "
            f"competitors x {len(scores.workload_names)} workloads, 1000 bootstrap draws"
        )
        _, report_s, report_cpu = timed(report.render_report, loaded, scores, root / "report")
        print(f"report: {report_s:.2f} s (CPU {report_cpu:.2f} s)  csv, md, two png, html")
        # The figure that counts: what `algoperf score` spends before it starts drawing.
        print(
            f"load + score of {len(loaded.trials)} trials: {load_s + score_s:.2f} s "
            f"(CPU {load_cpu + score_cpu:.2f} s; goal < 3 s)"
        )
    finally:
        if args.keep is None:
            shutil.rmtree(root, ignore_errors=True)
        if key_folder is not None:
            shutil.rmtree(key_folder, ignore_errors=True)


if __name__ == "__main__":
    main()
