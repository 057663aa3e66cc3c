"""The record of one trial (`record.json`): one typed object for the runner, the failure path
of the sweep and the loader alike. Never imports torch or jax."""

from __future__ import annotations

import dataclasses
import datetime as dt
from dataclasses import dataclass, field
from typing import Any

SCHEMA_VERSION = 3

STATUSES = ("reached", "budget_exhausted", "diverged", "failed", "training_complete", "timeout")


def now_iso() -> str:
    return dt.datetime.now(dt.UTC).isoformat(timespec="seconds")


@dataclass
class TrialRecord:
    # ---- identity: what ran, where it is filed ------------------------------------------------
    sweep: str
    workload: str
    framework: str
    submission: str
    ruleset: str
    study: int
    trial: int
    variant: str | None = None
    hardware_profile: str | None = None
    size: str | None = None
    # ---- the code it measured ------------------------------------------------------------------
    submission_folder: str | None = None
    submission_sha256: str | None = None  # tree hash of every file of the submission folder
    submission_files: dict[str, str] = field(default_factory=dict)  # relative path -> sha256
    workload_sha256: str | None = None
    # ---- how it was run --------------------------------------------------------------------------
    seed: int | None = None
    root_seed: int | None = None
    hparams_source: str | None = None  # "defaults" | "search"
    hparams: dict[str, Any] = field(default_factory=dict)
    batch_size: int | None = None
    step_hint: int | None = None
    max_submission_time_s: float | None = None
    eval_every_steps: int | None = None
    eval_period_s: float | None = None
    max_steps: int | None = None  # a step cap makes the trial a smoke run, left out of leaderboards
    stop_at_target: bool = True
    threads: int | None = None
    target: float | None = None
    metric_name: str | None = None
    metric_higher_is_better: bool | None = None
    isolation: dict[str, Any] = field(default_factory=dict)  # what confined the worker
    # ---- the outcome ---------------------------------------------------------------------------
    status: str = "failed"
    time_to_target_s: float | None = None
    steps_to_target: int | None = None
    submission_time_s: float = 0.0
    eval_time_s: float = 0.0
    compile_time_s: float = 0.0  # reported by the worker: informational, never scored
    param_transfer_s: float = 0.0  # supervisor copying the worker's parameters in (untimed)
    wall_time_s: float | None = None
    global_steps: int = 0
    best_validation: float | None = None
    final_validation: float | None = None
    final_test: float | None = None
    num_evals: int = 0
    hardware: dict[str, Any] = field(default_factory=dict)
    software: dict[str, Any] = field(default_factory=dict)
    started_at: str = field(default_factory=now_iso)
    ended_at: str | None = None
    error: str | None = None
    schema_version: int = SCHEMA_VERSION

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def field_names(cls) -> tuple[str, ...]:
        return tuple(f.name for f in dataclasses.fields(cls))

    def fail(self, error: str, status: str = "failed") -> None:
        self.status, self.error = status, error
