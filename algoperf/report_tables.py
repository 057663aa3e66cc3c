"""What the report says, shaped from the tidy frames of a score and its trials: the leaderboard
tables, each competitor's progress toward each workload's target, and the sentences around them.

Plain data and text only: the templates (algoperf/templates/), the terminal summary
(algoperf.report_terminal) and the figures (algoperf.report_plots) present it. Never imports
torch or jax.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from algoperf import scoring
from algoperf.comparable import smoke_runs
from algoperf.results import TRIAL_KEYS, Results

MEASURE_LABELS = {"time": "time to target (submission time)", "steps": "steps to target"}

#: Above this many trials on a workload, the curves show each competitor's best trial only.
MAX_TRIAL_CURVES = 40


# ---- numbers as text -------------------------------------------------------------------------


def format_value(value: float, measure: str) -> str:
    """A median time ("12.3 s") or step count ("1,234 steps"); "—" when missed."""
    if not math.isfinite(value):
        return "—"
    if measure == "steps":
        return f"{value:,.0f} steps" if value == int(value) else f"{value:,.1f} steps"
    if value < 10:
        return f"{value:.2f} s"
    if value < 1000:
        return f"{value:.1f} s"
    return f"{value:,.0f} s"


def format_score(row: pd.Series) -> str:
    return f"{row['score']:.2f} [{row['score_ci_low']:.2f}, {row['score_ci_high']:.2f}]"


def format_metric(value: float) -> str:
    """A validation metric or a distance between two ("0.85", "1.234e-05"); "—" when unknown."""
    return f"{value:.4g}" if math.isfinite(value) else "—"


def direction_text(higher_is_better: bool) -> str:
    return "higher is better" if higher_is_better else "lower is better"


# ---- the leaderboard -------------------------------------------------------------------------


@dataclass(frozen=True)
class Cell:
    """One workload cell of the leaderboard: median value, ratio to the best, and status."""

    value: str  # "12.3 s", or "—" when missed
    ratio: str  # "1.35×", ">4×", or "" for the best and for a miss
    status: str  # "best", "reached", "slow" (reached, ratio > tau_max) or "missed"
    unstable: bool

    @property
    def mark(self) -> str:
        return "✗" if self.status == "missed" else "✓"

    def text(self) -> str:
        """The cell as one line of text (markdown, terminal)."""
        if self.status == "missed":
            text = "✗"
        else:
            text = f"{self.value} ✓" + (f" ({self.ratio})" if self.ratio else "")
        return text + (" *" if self.unstable else "")


def workload_cell(result: Any, scores: scoring.Scores) -> Cell:
    """The cell of one row of `scores.workloads` (a competitor on a workload)."""
    unstable = not bool(result.stable)
    if not result.reached:
        return Cell("—", "", "missed", unstable)
    median = result.steps_to_target if scores.measure == "steps" else result.time_to_target_s
    value = format_value(median, scores.measure)
    if scores.measure == "time":  # steps too: they are comparable across hardware
        value += f" · {format_value(result.steps_to_target, 'steps')}"
    if not math.isfinite(result.ratio):
        return Cell(value, f">{scores.tau_max:g}×", "slow", unstable)
    if result.ratio == 1.0:
        return Cell(value, "", "best", unstable)
    return Cell(value, f"{result.ratio:.2f}×", "reached", unstable)


@dataclass(frozen=True)
class LeaderboardRow:
    rank: int
    submission: str
    framework: str
    score: float
    score_text: str  # "0.83 [0.71, 0.95]"
    speedup: str | None  # "1.20×", "—", or None when the table has no speedup column
    cells: list[Cell]  # one per workload, in the table's order

    @property
    def score_percent(self) -> int:
        return round(max(0.0, min(1.0, self.score)) * 100)


@dataclass(frozen=True)
class LeaderboardTable:
    """The leaderboard of one group (a framework when time is measured, else everyone)."""

    title: str | None  # None when there is only one group
    speedup_header: str | None  # "speedup vs adamw", or None without a reference
    workloads: list[str]
    rows: list[LeaderboardRow]

    @property
    def header(self) -> list[str]:
        speedup = [self.speedup_header] if self.speedup_header else []
        return ["rank", "submission", "framework", "score [95% CI]", *speedup, *self.workloads]


def _speedup_header(board: pd.DataFrame) -> str | None:
    reference = board["reference"].dropna()
    if not len(reference):
        return None
    submission_of = dict(zip(board["competitor"], board["submission"], strict=True))
    names = reference.map(submission_of).fillna(reference)
    return f"speedup vs {', '.join(dict.fromkeys(names))}"


def leaderboard_tables(scores: scoring.Scores) -> list[LeaderboardTable]:
    """One table per group, rows in rank order, a cell per workload from `scores.workloads`."""
    by_pair = {(r.competitor, r.workload): r for r in scores.workloads.itertuples(index=False)}
    groups = list(scores.leaderboard.groupby("group", sort=True))
    tables = []
    for group, board in groups:
        speedup_header = _speedup_header(board)
        rows = []
        for _, row in board.iterrows():
            speedup = None
            if speedup_header:
                value = row["speedup_vs_reference"]
                speedup = f"{value:.2f}×" if math.isfinite(value) else "—"
            cells = [workload_cell(by_pair[(row["competitor"], w)], scores) for w in scores.workload_names]
            rows.append(
                LeaderboardRow(
                    int(row["rank"]),
                    str(row["submission"]),
                    str(row["framework"]),
                    float(row["score"]),
                    format_score(row),
                    speedup,
                    cells,
                )
            )
        title = None if len(groups) == 1 else f"{group} (time is compared within one framework only)"
        tables.append(LeaderboardTable(title, speedup_header, list(scores.workload_names), rows))
    return tables


def nothing_reached_line(scores: scoring.Scores) -> str | None:
    """When every score is 0 (no competitor reached any target: the fastest on a workload always
    has ratio 1), a line saying so and where to look instead."""
    if not (scores.leaderboard["score"] == 0).all():
        return None
    return (
        "No competitor reached the target on any workload, so every score is 0.00. "
        "“Progress toward the targets” shows how close each came."
    )


# ---- lines around the leaderboard ------------------------------------------------------------


def _hardware_line(scores: scoring.Scores) -> str:
    hardware = scores.hardware
    device = hardware.get("device", "unknown device")
    parts = [str(device)]
    if hardware.get("cpu") and hardware.get("cpu") != device:
        parts.append(str(hardware["cpu"]))
    return f"{' · '.join(parts)} (fingerprint {hardware.get('fingerprint', 'unknown')})"


def _studies_line(scores: scoring.Scores) -> str:
    counts = scores.workloads["num_studies"]
    counts = counts[counts > 0]
    studies = f"{counts.min()}" if counts.min() == counts.max() else f"{counts.min()}–{counts.max()}"
    noun = "study" if counts.max() == 1 else "studies"
    trials = "trial" if scores.num_trials == 1 else "trials"
    return f"{studies} {noun} per submission and workload, {scores.num_trials} {trials}"


def summary_line(scores: scoring.Scores) -> str:
    return (
        f"Measure: {MEASURE_LABELS[scores.measure]} · τ_max = {scores.tau_max:g} · "
        f"ruleset {scores.ruleset} · {_studies_line(scores)} · hardware {_hardware_line(scores)}"
    )


def unverified_line(scores: scoring.Scores) -> str | None:
    """The notice that the scores rest partly on records whose signature check failed."""
    if not scores.unverified:
        return None
    count = len(scores.unverified)
    return (
        f"Unverified: these scores include {count} record{'s' if count > 1 else ''} failing the "
        "signature check (edited after being written, unsigned, or signed with another key), scored "
        "with --trust-unsigned; see Warnings."
    )


def excluded_heading(scores: scoring.Scores) -> str:
    count = len(scores.excluded)
    return f"Left out of this score ({count} entr{'ies' if count > 1 else 'y'})"


def cells_note(scores: scoring.Scores) -> str:
    return (
        f"Cells: median {MEASURE_LABELS[scores.measure]} over studies, ✓ reached / ✗ missed, "
        "(r×) the ratio to the fastest; * marks a result that is unstable across studies."
    )


def stability_notes(scores: scoring.Scores) -> list[str]:
    """One line per unstable (competitor, workload), or one line saying all are stable."""
    notes = []
    rows = scores.workloads
    for row in rows[~rows["stable"]].itertuples():
        if math.isinf(row.spread):
            why = f"{row.studies_reached} of {row.num_studies} studies reached the target"
        else:
            why = (
                f"the slowest study took {row.spread:.2f}× the fastest "
                f"(stable means ≤ {scoring.STABILITY_MAX_SPREAD:g}×)"
            )
        notes.append(f"{row.competitor} on {row.workload}: unstable, {why}.")
    if not notes:
        notes.append(
            "Every result is stable: all studies agree on reached/missed and the slowest study "
            f"took at most {scoring.STABILITY_MAX_SPREAD:g}× the fastest."
        )
    if (rows["num_studies"] <= 1).all():
        notes.append("Each result rests on one study, so stability across studies is not judged.")
    return notes


# ---- every trial, named as on the leaderboard ------------------------------------------------


def trial_frame(results: Results, scores: scoring.Scores) -> pd.DataFrame:
    """One row per trial the report covers, smoke runs included, with the columns the progress
    tables and curves read: competitor (as on the leaderboard), step_capped, scored, value (the
    measure, +inf when missed) and the record's keys, status, metric and target."""
    trials = results.trials.copy()
    for column in ("sweep", "status", "path"):  # keys as scoring keys them
        trials[column] = trials[column].fillna("").astype(str)
    trials["step_capped"] = smoke_runs(trials).to_numpy(bool)
    # scoring leaves smoke runs out unless asked to include them: then it counts fewer trials
    smoke_left_out = scores.num_trials < len(trials)
    trials["scored"] = ~trials["step_capped"] if smoke_left_out else True
    names = {(r.submission, r.framework): r.competitor for r in scores.workloads.itertuples(index=False)}
    several_frameworks = trials["framework"].nunique() > 1
    trials["competitor"] = [
        names.get((s, f), f"{s} [{f}]" if several_frameworks else str(s))
        for s, f in zip(trials["submission"], trials["framework"], strict=True)
    ]
    values = pd.to_numeric(trials[scoring.MEASURES[scores.measure]], errors="coerce").astype(float)
    trials["value"] = values.where(np.isfinite(values), np.inf)
    return trials


def competitor_order(trials: pd.DataFrame, scores: scoring.Scores) -> pd.DataFrame:
    """(competitor, submission, framework) of every competitor: leaderboard order first, then
    those not scored (smoke runs only), by name."""
    scored = scores.leaderboard[["competitor", "submission", "framework"]]
    unscored = ~trials["competitor"].isin(scored["competitor"])
    others = (
        trials.loc[unscored, ["competitor", "submission", "framework"]]
        .drop_duplicates("competitor")
        .sort_values("competitor")
    )
    return pd.concat([scored, others], ignore_index=True)


# ---- progress toward the targets -------------------------------------------------------------


def _workload_meta(trials: pd.DataFrame) -> pd.DataFrame:
    """Per workload: metric name, direction and target (first known value: a failed trial's
    record may lack them)."""
    return trials.groupby("workload", sort=True).agg(
        metric_name=("metric_name", "first"),
        higher_is_better=("metric_higher_is_better", "first"),
        target=("target", "first"),
    )


def progress_frame(trials: pd.DataFrame) -> pd.DataFrame:
    """One row per (workload, competitor) of `trial_frame`: the best validation metric over its
    trials (direction-aware), the gap to the target (> 0: short of it), how many trials ran,
    reached, were step-capped and were scored, the step caps, and the count per status."""
    meta = _workload_meta(trials)
    higher = trials["workload"].map(meta["higher_is_better"].astype(bool)).to_numpy(bool)
    metric = pd.to_numeric(trials["best_validation"], errors="coerce").astype(float)
    frame = trials.assign(
        _better=np.where(higher, metric, -metric),  # larger is better
        _reached=trials["status"] == "reached",
        _cap=pd.to_numeric(trials["max_steps"], errors="coerce") if "max_steps" in trials else np.nan,
    )
    keys = ["workload", "competitor"]
    table = frame.groupby(keys, sort=True).agg(
        submission=("submission", "first"),
        framework=("framework", "first"),
        best_better=("_better", "max"),
        ran=("status", "size"),
        reached=("_reached", "sum"),
        step_capped=("step_capped", "sum"),
        scored=("scored", "sum"),
    )
    table = table.reset_index().join(meta, on="workload")
    up = table["higher_is_better"].astype(bool)
    table["best_validation"] = np.where(up, table["best_better"], -table["best_better"])
    target = pd.to_numeric(table["target"], errors="coerce").astype(float)
    table["gap"] = np.where(up, target - table["best_validation"], table["best_validation"] - target)
    counts = frame.groupby([*keys, "status"], sort=True).size()
    statuses = {
        pair: dict(zip(rows.index.get_level_values("status"), rows.to_numpy(), strict=True))
        for pair, rows in counts.groupby(level=[0, 1], sort=False)
    }
    caps = frame[frame["step_capped"]].groupby(keys)["_cap"].agg(lambda v: tuple(sorted({int(c) for c in v})))
    pairs = list(zip(table["workload"], table["competitor"], strict=True))
    table["statuses"] = [{s: int(n) for s, n in statuses[p].items()} for p in pairs]
    table["max_steps"] = [caps.get(p, ()) for p in pairs]
    return table.drop(columns="best_better")


@dataclass(frozen=True)
class ProgressRow:
    """How close one competitor came to one workload's target."""

    competitor: str
    best: float  # best validation metric over its trials; NaN when none logged one
    gap: float  # distance to the target in the bad direction: > 0 short, <= 0 met; NaN unknown
    reached: int  # trials that reached the target
    ran: int  # trials recorded
    statuses: dict[str, int]  # status -> trials
    step_capped: int  # trials run under a step cap (max_steps): smoke runs
    max_steps: tuple[int, ...]
    scored: int  # trials in the score (smoke runs are left out unless included)

    @property
    def best_text(self) -> str:
        return format_metric(self.best)

    @property
    def gap_text(self) -> str:
        if not math.isfinite(self.gap):
            return "—"
        return f"{self.gap:.4g} short" if self.gap > 0 else f"met (by {-self.gap:.4g})"

    @property
    def reached_text(self) -> str:
        return f"{self.reached} of {self.ran}"

    @property
    def statuses_text(self) -> str:
        return ", ".join(f"{status}×{count}" for status, count in sorted(self.statuses.items()))

    @property
    def step_cap_text(self) -> str:
        """Empty when no trial was step-capped, else e.g. "3 step-capped (max_steps=10), not scored"."""
        if not self.step_capped:
            return ""
        text = f"{self.step_capped} step-capped (max_steps={', '.join(map(str, self.max_steps))})"
        return text + (", not scored" if self.scored < self.ran else "")


@dataclass(frozen=True)
class WorkloadProgress:
    """Every competitor's progress toward one workload's target, closest first."""

    workload: str
    metric_name: str
    higher_is_better: bool
    target: float
    rows: list[ProgressRow]

    @property
    def direction(self) -> str:
        return direction_text(self.higher_is_better)

    @property
    def target_rule(self) -> str:
        """What reaching the target means, e.g. "validation accuracy ≥ 0.9"."""
        sign = "≥" if self.higher_is_better else "≤"
        return f"validation {self.metric_name} {sign} {format_metric(self.target)}"

    @property
    def target_text(self) -> str:
        return f"{self.target_rule} ({self.direction})"

    @property
    def note(self) -> str | None:
        """A sentence when no trial, or only a few, reached the target; None otherwise."""
        reached = sum(r.reached for r in self.rows)
        ran = sum(r.ran for r in self.rows)
        if reached == 0:
            known = [r for r in self.rows if math.isfinite(r.gap)]
            rule = f"{self.target_rule}, {self.direction}"
            head = f"No competitor reached the target on {self.workload} ({rule})"
            if not known:
                return f"{head}, and no trial logged a validation {self.metric_name}."
            closest = min(known, key=lambda r: r.gap)
            best = f"{closest.competitor}, best validation {self.metric_name} {closest.best_text}"
            if closest.gap <= 0:  # the metric met the target's value, but too late to count
                return f"{head}. Closest: {best}, the target's value but not within the budget."
            trials = f"{closest.ran} trial{'s' if closest.ran > 1 else ''}"
            return f"{head}. Closest: {best} over {trials}, {closest.gap_text} of the target."
        if 2 * reached < ran:
            who = ", ".join(r.competitor for r in self.rows if r.reached)
            return f"Only {reached} of {ran} trials reached the target on {self.workload} ({who})."
        return None


def progress_by_workload(trials: pd.DataFrame) -> list[WorkloadProgress]:
    """`progress_frame` of `trials` (a `trial_frame`) as one table per workload, rows ordered
    by trials at target, then closeness to the target."""
    frame = progress_frame(trials)
    frame = frame.assign(_gap=frame["gap"].fillna(np.inf)).sort_values(
        ["workload", "reached", "_gap", "competitor"], ascending=[True, False, True, True]
    )
    tables = []
    for workload, rows in frame.groupby("workload", sort=True):
        first = rows.iloc[0]
        tables.append(
            WorkloadProgress(
                workload=str(workload),
                metric_name=str(first["metric_name"]),
                higher_is_better=bool(first["higher_is_better"]),
                target=float(first["target"]) if pd.notna(first["target"]) else math.nan,
                rows=[
                    ProgressRow(
                        competitor=str(r.competitor),
                        best=float(r.best_validation),
                        gap=float(r.gap),
                        reached=int(r.reached),
                        ran=int(r.ran),
                        statuses=r.statuses,
                        step_capped=int(r.step_capped),
                        max_steps=r.max_steps,
                        scored=int(r.scored),
                    )
                    for r in rows.itertuples(index=False)
                ],
            )
        )
    return tables


# ---- curves and profiles ---------------------------------------------------------------------


def curve_evals(results: Results, trials: pd.DataFrame) -> pd.DataFrame:
    """Every eval of every trial in `trials` (a `trial_frame`), with its trial's competitor,
    path, step_capped, and `best`: whether it is the competitor's best trial on the workload
    (fastest to target, else best validation metric; as scoring picks it). On a workload with
    more than MAX_TRIAL_CURVES trials only the best trials are kept."""
    best = scoring.best_trials(trials)["path"]
    trials = trials.assign(best=trials["path"].isin(set(best)))
    many = trials.groupby("workload")["path"].transform("size") > MAX_TRIAL_CURVES
    trials = trials[~many | trials["best"]]
    columns = [*TRIAL_KEYS, "competitor", "path", "step_capped", "best"]
    evals = results.evals
    if evals.empty:
        return pd.DataFrame(columns=[*evals.columns, *columns[len(TRIAL_KEYS) :]])
    evals = evals.astype({"study": "int64", "trial": "int64"})
    keys = trials[columns].astype({"study": "int64", "trial": "int64"})
    evals["sweep"] = evals["sweep"].fillna("").astype(str)
    return evals.merge(keys, on=list(TRIAL_KEYS), how="inner")


def profile_overlaps(scores: scoring.Scores) -> list[tuple[str, list[str]]]:
    """(group, competitors) for every set of two or more competitors whose performance profiles
    are identical (their lines would lie on top of each other), in leaderboard order."""
    order = {name: i for i, name in enumerate(scores.leaderboard["competitor"])}
    found = []
    for group, frame in scores.profiles.groupby("group", sort=True):
        same: dict[bytes, list[str]] = {}
        for competitor, curve in frame.groupby("competitor", sort=False):
            key = np.ascontiguousarray(curve.sort_values("tau")["fraction"].to_numpy(float)).tobytes()
            same.setdefault(key, []).append(str(competitor))
        for names in same.values():
            if len(names) > 1:
                found.append((str(group), sorted(names, key=lambda n: order.get(n, len(order)))))
    return found


def overlap_notes(scores: scoring.Scores) -> list[str]:
    several = scores.leaderboard["group"].nunique() > 1
    return [
        f"Lines overlap (identical profiles){f' in {group}' if several else ''}: {', '.join(names)}; "
        "drawn slightly apart, with a different marker each."
        for group, names in profile_overlaps(scores)
    ]
