"""Known-answer trial folders for tests: complete, consistent, signed records and their evals.csv."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

from algoperf import results as results_store
from algoperf.results import RECORD_FIELDS, EvalLog, TrialKey, trial_dir, write_record

FINGERPRINT = "cpu-test-2core"


def make_record(
    submission: str,
    workload: str,
    time_to_target_s: float | None,
    *,
    study: int = 0,
    trial: int = 0,
    steps_to_target: int | None = None,
    framework: str = "torch",
    fingerprint: str = FINGERPRINT,
    ruleset: str = "external",
    sweep: str = "sweep",
    target: float = 0.9,
    higher_is_better: bool = True,
    best_validation: float | None = None,
) -> dict[str, Any]:
    """A complete record; reached iff `time_to_target_s` is given."""
    reached = time_to_target_s is not None
    if reached and steps_to_target is None:
        steps_to_target = int(round(time_to_target_s * 10))
    if best_validation is None:
        best_validation = target + 0.01 if reached else target - 0.1
    record = {
        "schema_version": results_store.SCHEMA_VERSION,
        "sweep": sweep,
        "workload": workload,
        "variant": "base",
        "framework": framework,
        "submission": submission,
        "submission_sha256": "0" * 64,
        "workload_sha256": "1" * 64,
        "ruleset": ruleset,
        "hardware_profile": "cpu",
        "study": study,
        "trial": trial,
        "seed": 1000 * study + trial,
        "hparams": {"learning_rate": 1e-3},
        "status": "reached" if reached else "budget_exhausted",
        "time_to_target_s": time_to_target_s,
        "steps_to_target": steps_to_target if reached else None,
        "submission_time_s": time_to_target_s if reached else 100.0,
        "eval_time_s": 1.0,
        "compile_time_s": 0.0,
        "wall_time_s": 120.0,
        "global_steps": steps_to_target if reached else 1000,
        "max_submission_time_s": 100.0,
        "target": target,
        "metric_name": "accuracy" if higher_is_better else "mae",
        "metric_higher_is_better": higher_is_better,
        "best_validation": best_validation,
        "final_validation": best_validation,
        "num_evals": 4,
        "stop_at_target": True,
        "max_steps": None,
        "submission_files": {},
        "isolation": {},
        "adaptations": [],
        "param_transfer_s": 0.0,
        "eval_every_steps": 100,
        "hardware": {"fingerprint": fingerprint, "device": "Test CPU", "cpu": "Test CPU 2-core"},
        "software": {"python": "3.11", "algoperf": "0.1.0"},
        "started_at": "2025-01-01T00:00:00Z",
        "ended_at": "2025-01-01T00:02:00Z",
        "error": None,
    }
    # Fields added to the schema after this test was written: fill them so the test keeps up.
    for name in RECORD_FIELDS:
        record.setdefault(name, None)
    return record


def write_trial(root: Path, record: dict[str, Any]) -> Path:
    """Write a record and a 4-row evals.csv that ends at the record's best metric."""
    directory = trial_dir(root, TrialKey(*(record[k] for k in TrialKey._fields)))
    log = EvalLog(directory)
    end_time = record["submission_time_s"]
    end_step = record["global_steps"]
    start = 0.1 if record["metric_higher_is_better"] else 2.0
    for k in range(1, 5):
        fraction = k / 4
        metric = start + (record["best_validation"] - start) * math.sqrt(fraction)
        log.append(
            {
                "step": int(end_step * fraction),
                "submission_time_s": end_time * fraction,
                "eval_time_s": 0.25 * k,
                "wall_time_s": end_time * fraction + 0.3 * k,
                "train_loss": 1.0 / k,
                "validation_loss": 1.1 / k,
                "validation_metric": metric,
                "test_loss": 1.2 / k,
                "test_metric": metric - 0.01,
            }
        )
    log.close()
    write_record(directory, record)
    return directory


def build(root: Path, table: dict[tuple[str, str], list[Any]], **kwargs: Any) -> results_store.Results:
    """Write trials from {(submission, workload): [study entries]} and load them back.

    A study entry is a time (one trial), None (one trial that missed), or a list of those
    (several trials in that study).
    """
    for (submission, workload), studies in table.items():
        for study, entry in enumerate(studies):
            for trial, time in enumerate(entry if isinstance(entry, list) else [entry]):
                write_trial(
                    root,
                    make_record(submission, workload, time, study=study, trial=trial, **kwargs),
                )
    return results_store.load(root)
