"""The record of one trial (`record.json`): one typed object for the runner, the failure path
of the sweep and the loader alike. Never imports torch or jax."""

from __future__ import annotations

import dataclasses
import datetime as dt
import math
from dataclasses import dataclass, field
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

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
    # What the harness did to run an AlgoPerf submission as it is (algoperf.compat), one line each.
    adaptations: list[str] = field(default_factory=list)
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


# ---- the record as stored, checked on every read -----------------------------------------------
#
# pydantic (not hand-written checks): one declarative model gives types, ranges and known values
# with precise per-field messages, validates ~10k records a second in its compiled core, and the
# consistency rules sit beside the fields they relate. Strict mode: a study stored as "1" or a
# time stored as "fast" is an error, never silently coerced.

Name = Annotated[str, Field(min_length=1)]
Count = Annotated[int, Field(ge=0)]
Positive = Annotated[int, Field(gt=0)]
Finite = Annotated[float, Field(allow_inf_nan=False)]
Seconds = Annotated[float, Field(ge=0, allow_inf_nan=False)]
PositiveSeconds = Annotated[float, Field(gt=0, allow_inf_nan=False)]
Metric = float  # nan/inf allowed: a diverged trial's last metrics


class StoredRecord(BaseModel):
    """record.json as the loader accepts it: every field of TrialRecord plus the evals hash.

    Consistency (one meaning per status): `reached` <=> a finite time >= 0 within the record's own
    budget, a step count, and a best validation metric that meets the target; every other
    status carries neither a time nor a step count to target.
    """

    model_config = ConfigDict(strict=True, extra="forbid", frozen=True)

    sweep: Name
    workload: Name
    framework: Literal["torch", "jax"]
    submission: Name
    ruleset: Name
    study: Count
    trial: Count
    variant: str | None
    hardware_profile: str | None
    size: str | None
    submission_folder: str | None
    submission_sha256: str | None
    submission_files: dict[str, str]
    workload_sha256: str | None
    seed: int | None
    root_seed: int | None
    hparams_source: Literal["defaults", "search"] | None
    hparams: dict[str, Any]
    batch_size: Positive | None
    step_hint: Positive | None
    max_submission_time_s: PositiveSeconds | None
    eval_every_steps: Positive | None
    eval_period_s: PositiveSeconds | None
    max_steps: Positive | None
    stop_at_target: bool
    threads: Positive | None
    target: Finite | None
    metric_name: str | None
    metric_higher_is_better: bool | None
    isolation: dict[str, Any]
    adaptations: list[str] = []
    status: Literal[STATUSES]  # type: ignore[valid-type]
    time_to_target_s: Seconds | None
    steps_to_target: Count | None
    submission_time_s: Seconds
    eval_time_s: Seconds
    compile_time_s: Seconds
    param_transfer_s: Seconds
    wall_time_s: Seconds | None
    global_steps: Count
    best_validation: Finite | None
    final_validation: Metric | None
    final_test: Metric | None
    num_evals: Count
    hardware: dict[str, Any]
    software: dict[str, Any]
    started_at: str
    ended_at: str | None
    error: str | None
    schema_version: Literal[SCHEMA_VERSION]  # type: ignore[valid-type]
    evals_sha256: str | None

    @model_validator(mode="after")
    def _one_meaning_per_status(self) -> StoredRecord:
        if self.status != "reached":
            if self.time_to_target_s is not None or self.steps_to_target is not None:
                raise ValueError(
                    f"status {self.status!r} carries a time or step count to target; only a "
                    "reached trial has one"
                )
            return self
        missing = [
            name
            for name in ("time_to_target_s", "steps_to_target", "max_submission_time_s", "target")
            if getattr(self, name) is None
        ] + (["metric_higher_is_better"] if self.metric_higher_is_better is None else [])
        if missing:
            raise ValueError(f"status 'reached' without {', '.join(missing)}")
        assert self.time_to_target_s is not None and self.max_submission_time_s is not None
        if self.time_to_target_s > self.max_submission_time_s:
            raise ValueError(
                f"reached at {self.time_to_target_s:g} s, after its own budget of "
                f"{self.max_submission_time_s:g} s"
            )
        if self.time_to_target_s > self.submission_time_s:
            raise ValueError(
                f"reached at {self.time_to_target_s:g} s but ran only {self.submission_time_s:g} s"
            )
        assert self.steps_to_target is not None
        if self.steps_to_target > self.global_steps:
            raise ValueError(f"reached at step {self.steps_to_target} but ran only {self.global_steps} steps")
        if not meets_target(self.best_validation, self.target, self.metric_higher_is_better):
            raise ValueError(
                f"status 'reached' but best_validation {self.best_validation} does not meet the "
                f"target {self.target}"
            )
        return self


def meets_target(value: float | None, target: float | None, higher_is_better: bool | None) -> bool:
    """The workloads' rule (algoperf.workload.Workload.has_reached_target) on stored values."""
    if value is None or target is None or higher_is_better is None or not math.isfinite(value):
        return False
    return value >= target if higher_is_better else value <= target


def _describe(error: dict[str, Any]) -> str:
    where = ".".join(str(part) for part in error["loc"])
    if error["type"] == "missing":
        return f"{where}: missing"
    if error["type"] == "extra_forbidden":
        return f"{where}: unknown field"
    if not where:  # a model-level (consistency) rule
        return str(error["msg"]).removeprefix("Value error, ")
    return f"{where}: {error['msg'].lower()} (got {error['input']!r})"


_VALIDATE = StoredRecord.__pydantic_validator__.validate_python


def record_problems(stored: dict[str, Any]) -> list[str]:
    """What is wrong with a stored record (its signature taken out), one line each; [] when
    it is well-formed and consistent."""
    try:
        _VALIDATE(stored)
    except ValidationError as e:
        return [_describe(error) for error in e.errors(include_url=False)]
    return []
