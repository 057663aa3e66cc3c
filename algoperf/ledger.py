"""The timing ledger of one trial: submission time, the eval schedule and the budget.

Only the supervisor keeps it, on its own clock: the worker's clock is never read. Each timed
interval runs from the moment the supervisor lets the worker go until its report arrives, so
everything the worker does in between (steps, device syncs, `prepare_for_eval`, handing over
its parameters) is submission time.
"""

from __future__ import annotations

import time
from dataclasses import dataclass


@dataclass
class Ledger:
    budget_s: float
    eval_every_steps: int | None  # step-based schedule (deterministic); None: every eval_period_s
    eval_period_s: float | None
    max_steps: int | None = None  # hard step cap (tests, target setting)
    submission_time_s: float = 0.0
    eval_time_s: float = 0.0
    global_step: int = 0
    last_eval_step: int = 0
    last_eval_time_s: float = 0.0

    clock = staticmethod(time.perf_counter)

    def add_interval(self, seconds: float, global_step: int) -> None:
        """Credit one timed interval that ended at `global_step` (as the worker reports it)."""
        if seconds < 0 or global_step < self.global_step:
            raise ValueError("a timed interval cannot run backwards")
        self.submission_time_s += seconds
        self.global_step = global_step

    def add_eval(self, seconds: float) -> None:
        self.eval_time_s += seconds
        self.last_eval_step, self.last_eval_time_s = self.global_step, self.submission_time_s

    # ---- when the next interval must end -----------------------------------------------------
    def stop_step(self) -> int | None:
        """The step at which the worker must report next (None: when the supervisor says so)."""
        steps = [self.max_steps] if self.max_steps else []
        if self.eval_every_steps:
            steps.append(self.last_eval_step + self.eval_every_steps)
        return min(steps) if steps else None

    def seconds_to_eval(self) -> float | None:
        """Submission seconds until a time-based eval is due (None on a step-based schedule)."""
        if self.eval_every_steps or not self.eval_period_s:
            return None
        return self.last_eval_time_s + self.eval_period_s - self.submission_time_s

    def seconds_left(self) -> float:
        return self.budget_s - self.submission_time_s

    # ---- what the interval that just ended means ---------------------------------------------
    @property
    def over_budget(self) -> bool:
        return self.submission_time_s >= self.budget_s

    @property
    def at_step_cap(self) -> bool:
        return bool(self.max_steps) and self.global_step >= self.max_steps

    @property
    def eval_due(self) -> bool:
        if self.eval_every_steps:
            return self.global_step - self.last_eval_step >= self.eval_every_steps
        return self.submission_time_s - self.last_eval_time_s >= (self.eval_period_s or 0.0)

    def within_budget(self) -> bool:
        """A target met at an eval counts only if the submission time then is within the budget."""
        return self.submission_time_s <= self.budget_s
