"""Scoring: time-to-target per study, performance ratios and profiles, the benchmark score.

The maths (docs/architecture.md, "Scoring") as pure functions on numpy arrays (the formulas) and pandas
frames (the bookkeeping). `score(results)` runs the whole pipeline. Never imports torch or jax.

Notation: s a competitor (a submission in one framework), w a workload, t_{s,w} its time (or
steps) to target, median over studies, +inf when missed; r_{s,w} = t_{s,w} / min_s t_{s,w}.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from typing import Any

import numpy as np
import pandas as pd

from algoperf.comparable import SETTINGS, refuse_conflicts, smoke_runs
from algoperf.errors import AlgoperfError, did_you_mean
from algoperf.results import Results, refuse_invalid, refuse_untrusted

#: measure name -> the record field it reads.
MEASURES = {"time": "time_to_target_s", "steps": "steps_to_target"}

DEFAULT_TAU_MAX = 4.0
DEFAULT_REFERENCE = "adamw"
DEFAULT_N_BOOT = 1000
CI_LEVEL = 0.95

#: A (competitor, workload) is "stable" when every study agrees on reached/missed and, when
#: reached, the slowest study took at most this many times the fastest one.
STABILITY_MAX_SPREAD = 1.5

#: The record fields scoring reads.
SCORED_COLUMNS = (
    "sweep",
    "submission",
    "workload",
    "framework",
    "ruleset",
    "study",
    "trial",
    "status",
    "time_to_target_s",
    "steps_to_target",
    "target",
    "metric_name",
    "metric_higher_is_better",
    "best_validation",
    "hardware",
    "path",
)

#: Group name when every competitor competes together (measure="steps").
ALL_FRAMEWORKS = "all"


# ---- the formulas, on arrays -----------------------------------------------------------------


def median_over_studies(study_values: np.ndarray | Sequence[float]) -> float:
    """t_{s,w} = median over studies of the study's time (+inf for a study that missed).

    np.median semantics with inf: median([1, inf, inf]) = inf, median([1, 2, inf]) = 2, and for
    an even count the two middle values are averaged, so median([1, inf]) = inf: when half the
    studies missed, the target is not reliably reached. No studies at all gives +inf.
    """
    values = np.asarray(study_values, dtype=float)
    if values.size == 0:
        return math.inf
    return float(np.median(values))


def performance_ratios(times: np.ndarray, tau_max: float = DEFAULT_TAU_MAX) -> np.ndarray:
    """r_{s,w} = t_{s,w} / min_s t_{s,w}, with r > tau_max and every miss set to +inf.

    `times` has shape (..., competitors, workloads); leading axes (e.g. bootstrap draws) are
    kept. Guards, so no NaN ever appears: a workload nobody reached (min = inf) gives r = inf
    for all; a best time of exactly 0 gives r = 1 to those at 0 and inf to the rest.

    >>> performance_ratios(np.array([[10.0, np.inf], [25.0, 3.0], [45.0, np.inf]]), tau_max=4.0)
    array([[1. , inf],
           [2.5, 1. ],
           [inf, inf]])
    """
    times = np.asarray(times, dtype=float)
    times = np.where(np.isnan(times), np.inf, times)
    best = times.min(axis=-2, keepdims=True)
    with np.errstate(divide="ignore", invalid="ignore"):
        ratios = times / best
    ratios = np.where(best == 0, np.where(times == 0, 1.0, np.inf), ratios)
    ratios = np.where(np.isfinite(best) & np.isfinite(times), ratios, np.inf)
    return np.where(ratios > tau_max, np.inf, ratios)


def performance_profile(ratios: np.ndarray, taus: np.ndarray | Sequence[float]) -> np.ndarray:
    """rho_s(tau) = (1/W) * #{w : r_{s,w} <= tau}, for every tau in `taus`.

    `ratios` has shape (..., workloads); the result has shape (..., len(taus)).
    """
    ratios = np.asarray(ratios, dtype=float)
    taus = np.asarray(taus, dtype=float)
    return (ratios[..., :, None] <= taus).mean(axis=-2)


def benchmark_scores(ratios: np.ndarray, tau_max: float = DEFAULT_TAU_MAX) -> np.ndarray:
    """B_s = 1/(tau_max - 1) * integral_1^tau_max rho_s(tau) dtau, computed exactly.

    rho_s is a step function: workload w adds 1/W from tau = r_{s,w} on, so it contributes
    (tau_max - r_{s,w}) / (tau_max - 1) / W when r_{s,w} <= tau_max (r >= 1 always) and 0
    otherwise. Hence B_s = mean_w max(0, tau_max - r_{s,w}) / (tau_max - 1), in [0, 1].
    `ratios` has shape (..., workloads); the result drops the last axis.

    >>> float(benchmark_scores(np.array([1.0, 2.5, np.inf]), tau_max=4.0))  # (3 + 1.5 + 0) / 3 / 3
    0.5
    """
    ratios = np.asarray(ratios, dtype=float)
    area = np.where(np.isfinite(ratios), np.maximum(0.0, tau_max - ratios), 0.0)
    return area.mean(axis=-1) / (tau_max - 1.0)


def geometric_mean_speedup(times: np.ndarray, reference_times: np.ndarray) -> float:
    """exp(mean_w log(t_{ref,w} / t_{s,w})) over the workloads both reached; NaN if none.

    Above 1 means faster than the reference. Each argument has shape (workloads,).
    """
    times = np.asarray(times, dtype=float)
    reference_times = np.asarray(reference_times, dtype=float)
    both = np.isfinite(times) & np.isfinite(reference_times) & (times > 0) & (reference_times > 0)
    if not both.any():
        return math.nan
    return float(np.exp(np.mean(np.log(reference_times[both] / times[both]))))


def study_spread(study_values: np.ndarray | Sequence[float]) -> tuple[bool, float]:
    """(stable, spread) of one (competitor, workload) across its studies.

    spread = max/min of the study times when every study reached (1.0 for one study), +inf when
    the studies disagree, NaN when none reached. stable = the studies agree on reached/missed
    and spread <= STABILITY_MAX_SPREAD. One study is trivially stable.
    """
    values = np.asarray(study_values, dtype=float)
    reached = np.isfinite(values)
    if values.size == 0 or not reached.any():
        return True, math.nan
    if not reached.all():
        return False, math.inf
    low, high = values.min(), values.max()
    spread = 1.0 if high == low else (math.inf if low == 0 else float(high / low))
    return spread <= STABILITY_MAX_SPREAD, spread


def bootstrap_scores(
    study_values: Sequence[Sequence[np.ndarray]],
    tau_max: float = DEFAULT_TAU_MAX,
    n_boot: int = DEFAULT_N_BOOT,
    rng: np.random.Generator | None = None,
) -> np.ndarray:
    """B_s recomputed on `n_boot` bootstrap resamples of the studies; shape (n_boot, competitors).

    `study_values[s][w]` holds the study times of competitor s on workload w. Each draw
    resamples, independently per (s, w), that many studies with replacement, takes the median,
    and recomputes ratios and scores for all competitors together.
    """
    rng = np.random.default_rng(0) if rng is None else rng
    num_competitors = len(study_values)
    num_workloads = len(study_values[0]) if num_competitors else 0
    medians = np.full((n_boot, num_competitors, num_workloads), np.inf)
    for s, per_workload in enumerate(study_values):
        for w, values in enumerate(per_workload):
            values = np.asarray(values, dtype=float)
            if values.size == 0:
                continue
            draws = rng.integers(0, values.size, size=(n_boot, values.size))
            medians[:, s, w] = np.median(values[draws], axis=1)
    return benchmark_scores(performance_ratios(medians, tau_max), tau_max)


# ---- the pipeline, on frames -----------------------------------------------------------------


@dataclass
class Scores:
    """Everything a score produces; the frames are tidy and written as they are by the report.

    leaderboard: one row per competitor (rank within its group, score with CI, speedup, and per
      workload `<w>/time_to_target_s`, `<w>/steps_to_target` (medians), `<w>/ratio`,
      `<w>/reached`, `<w>/stable`).
    workloads: one row per (competitor, workload): medians, ratio, stability, best trial.
    studies: one row per (competitor, workload, study): the study's fastest trial.
    profiles: long frame (group, competitor, tau, fraction): rho_s on a grid that holds every
      breakpoint, so a `where="post"` step plot of it is exact.
    """

    leaderboard: pd.DataFrame
    workloads: pd.DataFrame
    studies: pd.DataFrame
    profiles: pd.DataFrame
    measure: str
    tau_max: float
    reference: str | None
    ruleset: str
    hardware: dict[str, Any]
    workload_names: list[str]
    num_trials: int
    warnings: list[str] = field(default_factory=list)
    # records scored although they fail their signature check (trust_unsigned): the report says so
    unverified: list[str] = field(default_factory=list)
    # records left out of this score and why (invalid ones under skip_invalid, smoke runs)
    excluded: list[str] = field(default_factory=list)
    label: str = ""  # the sweep or settings group, when a folder is scored in parts


def _competitor_names(trials: pd.DataFrame) -> pd.Series:
    if trials["framework"].nunique() > 1:
        return trials["submission"].astype(str) + " [" + trials["framework"].astype(str) + "]"
    return trials["submission"].astype(str)


def _finite_or_inf(values: pd.Series) -> pd.Series:
    numbers = pd.to_numeric(values, errors="coerce").astype(float)
    return numbers.where(np.isfinite(numbers), np.inf)


def study_table(trials: pd.DataFrame, measure: str) -> pd.DataFrame:
    """One row per (group, competitor, workload, sweep, study): its fastest trial.

    A trial counts as reached when its `time_to_target_s` / `steps_to_target` is a finite number;
    a study's time is the minimum over its trials (+inf when none reached). A study is keyed by
    (sweep, study), so the same study number in two sweeps is two studies.
    """
    column = MEASURES[measure]
    frame = trials.assign(
        time_to_target_s=_finite_or_inf(trials["time_to_target_s"]),
        steps_to_target=_finite_or_inf(trials["steps_to_target"]),
    )
    frame["value"] = frame[column]
    frame["trial_reached"] = np.isfinite(frame["value"])
    keys = ["group", "competitor", "submission", "framework", "workload", "sweep", "study"]
    frame = frame.sort_values([*keys, "value", "trial"], kind="stable")
    grouped = frame.groupby(keys, sort=True, dropna=False)
    studies = grouped.agg(
        value=("value", "min"),
        time_to_target_s=("time_to_target_s", "min"),
        steps_to_target=("steps_to_target", "min"),
        num_trials=("trial", "size"),
        num_reached=("trial_reached", "sum"),
        best_trial=("trial", "first"),
        best_path=("path", "first"),
    ).reset_index()
    return studies


def best_trials(trials: pd.DataFrame) -> pd.DataFrame:
    """Per (competitor, workload): the fastest trial to target, else the trial with the best
    validation metric (direction-aware); ties go to the lowest (sweep, study, trial).

    `trials` needs the columns competitor, workload, value (the measure, +inf when missed),
    best_validation, metric_higher_is_better, sweep, study, trial and path.
    """
    metric = pd.to_numeric(trials["best_validation"], errors="coerce").astype(float)
    higher = trials["metric_higher_is_better"].astype(bool)
    badness = metric.where(~higher, -metric).where(np.isfinite(metric), np.inf)
    ranked = trials.assign(
        _missed=~np.isfinite(trials["value"]),
        _key=trials["value"].where(np.isfinite(trials["value"]), badness),
    ).sort_values(["competitor", "workload", "_missed", "_key", "sweep", "study", "trial"])
    best = ranked.groupby(["competitor", "workload"], sort=False).head(1)
    return best.set_index(["competitor", "workload"])[["sweep", "study", "trial", "path"]]


def status_counts(trials: pd.DataFrame) -> pd.Series:
    """Per (competitor, workload): "budget_exhausted×3, reached×12"."""
    counts = trials.groupby(["competitor", "workload", "status"], sort=True, dropna=False).size()
    text = counts.index.get_level_values("status").astype(str) + "×" + counts.astype(str).to_numpy()
    return pd.Series(text, index=counts.index).groupby(level=[0, 1], sort=False).agg(", ".join)


def _workload_meta(trials: pd.DataFrame) -> pd.DataFrame:
    """Per workload: metric name, direction and target (one target per workload: comparable
    refuses records that disagree)."""
    return trials.groupby("workload").agg(
        metric_name=("metric_name", "first"),
        metric_higher_is_better=("metric_higher_is_better", "first"),
        target=("target", "first"),
    )


def _score_group(
    group: str,
    trials: pd.DataFrame,
    studies: pd.DataFrame,
    meta: pd.DataFrame,
    options: ScoreOptions,
    rng: np.random.Generator,
) -> tuple[list[dict[str, Any]], list[dict[str, Any]], pd.DataFrame, list[str]]:
    """Score the competitors of one group: (leaderboard rows, workload rows, profiles, warnings).
    `meta` has one row per workload scored (all of the results, not only this group's)."""
    workload_names = list(meta.index)
    tau_max, reference, n_boot = options.tau_max, options.reference, options.n_boot
    competitors = (
        trials[["competitor", "submission", "framework"]]
        .drop_duplicates()
        .sort_values("competitor")
        .to_dict("records")
    )
    names = [c["competitor"] for c in competitors]
    studies_by_pair = dict(tuple(studies.groupby(["competitor", "workload"], sort=False)))
    best_by_pair = best_trials(trials).to_dict("index")
    statuses_by_pair = status_counts(trials).to_dict()
    no_studies = studies.iloc[:0]
    values = [
        [studies_by_pair.get((name, w), no_studies)["value"].to_numpy(float) for w in workload_names]
        for name in names
    ]
    times = np.array([[median_over_studies(v) for v in row] for row in values])
    ratios = performance_ratios(times, tau_max)
    points = benchmark_scores(ratios, tau_max)
    boots = bootstrap_scores(values, tau_max, n_boot, rng)
    ci_low, ci_high = np.quantile(boots, [(1 - CI_LEVEL) / 2, (1 + CI_LEVEL) / 2], axis=0)
    taus = np.unique(np.concatenate([np.linspace(1.0, tau_max, 301), ratios[np.isfinite(ratios)]]))
    profile = performance_profile(ratios, taus)

    found: list[str] = []
    leaderboard_rows: list[dict[str, Any]] = []
    workload_rows: list[dict[str, Any]] = []
    for i, c in enumerate(competitors):
        ref = _reference_index(reference, competitors, c)
        row: dict[str, Any] = {
            "group": group,
            "competitor": c["competitor"],
            "submission": c["submission"],
            "framework": c["framework"],
            "score": float(points[i]),
            "score_ci_low": float(ci_low[i]),
            "score_ci_high": float(ci_high[i]),
            "speedup_vs_reference": math.nan if ref is None else geometric_mean_speedup(times[i], times[ref]),
            "reference": None if ref is None else names[ref],
            "workloads_reached": int(np.isfinite(times[i]).sum()),
            "num_workloads": len(workload_names),
        }
        for j, w in enumerate(workload_names):
            pair_studies = studies_by_pair.get((c["competitor"], w), no_studies)
            higher = bool(meta.loc[w, "metric_higher_is_better"])
            best = best_by_pair.get((c["competitor"], w), {})
            if not best:
                found.append(f"{c['competitor']} has no trials on {w}; it counts as not reached.")
            stable, spread = study_spread(values[i][j])
            median_time = median_over_studies(pair_studies["time_to_target_s"].to_numpy(float))
            median_steps = median_over_studies(pair_studies["steps_to_target"].to_numpy(float))
            reached = bool(np.isfinite(times[i, j]))
            workload_rows.append(
                {
                    "group": group,
                    "competitor": c["competitor"],
                    "submission": c["submission"],
                    "framework": c["framework"],
                    "workload": w,
                    "metric_name": meta.loc[w, "metric_name"],
                    "metric_higher_is_better": higher,
                    "target": meta.loc[w, "target"],
                    "num_studies": len(values[i][j]),
                    "studies_reached": int(np.isfinite(values[i][j]).sum()),
                    "num_trials": int(pair_studies["num_trials"].sum()),
                    "statuses": statuses_by_pair.get((c["competitor"], w), ""),
                    "value": times[i, j],
                    "time_to_target_s": median_time,
                    "steps_to_target": median_steps,
                    "best_value": float(times[:, j].min()),
                    "ratio": ratios[i, j],
                    "reached": reached,
                    "within_tau_max": bool(np.isfinite(ratios[i, j])),
                    "stable": stable,
                    "spread": spread,
                    "best_sweep": best.get("sweep"),
                    "best_study": best.get("study"),
                    "best_trial": best.get("trial"),
                    "best_trial_path": best.get("path"),
                }
            )
            row[f"{w}/time_to_target_s"] = median_time
            row[f"{w}/steps_to_target"] = median_steps
            row[f"{w}/ratio"] = ratios[i, j]
            row[f"{w}/reached"] = reached
            row[f"{w}/stable"] = stable
        leaderboard_rows.append(row)
    if reference not in (None, DEFAULT_REFERENCE) and all(
        _reference_index(reference, competitors, c) is None for c in competitors
    ):
        found.append(
            f"reference {reference!r} is not a competitor in group {group!r}; no speedups there."
            + did_you_mean(str(reference), sorted({c["submission"] for c in competitors}))
        )
    profiles = pd.DataFrame(
        {
            "group": group,
            "competitor": np.repeat(names, len(taus)),
            "tau": np.tile(taus, len(names)),
            "fraction": profile.reshape(-1),
        }
    )
    return leaderboard_rows, workload_rows, profiles, found


@dataclass(frozen=True)
class ScoreOptions:
    """How to score (see `score`). Checked when made: a bad value is a clear error."""

    measure: str = "time"
    tau_max: float = DEFAULT_TAU_MAX
    reference: str | None = DEFAULT_REFERENCE
    n_boot: int = DEFAULT_N_BOOT
    seed: int = 0
    trust_unsigned: bool = False
    skip_invalid: bool = False
    include_smoke: bool = False

    def __post_init__(self) -> None:
        if self.measure not in MEASURES:
            raise AlgoperfError(f"unknown measure {self.measure!r}." + did_you_mean(self.measure, MEASURES))
        if not self.tau_max > 1:
            raise AlgoperfError(f"tau_max must be above 1 (got {self.tau_max}); the default is 4.")
        if self.n_boot < 1:
            raise AlgoperfError(f"n_boot must be at least 1 (got {self.n_boot}); the default is 1000.")


def score(results: Results, options: ScoreOptions | None = None, **changes: Any) -> Scores:
    """Score every competitor in `results` (see the module docstring and docs/architecture.md).

    measure="time" scores each framework on its own (time on one machine differs per framework);
    measure="steps" lets every (submission, framework) pair compete together. The workloads
    scored are all workloads in `results`; a competitor without trials on one counts as missing
    it. `reference` names a submission (or a competitor, "adamw [torch]") for the geometric-mean
    speedup; where a group holds several frameworks, the reference in the competitor's own
    framework is used. The CI is a percentile bootstrap over studies with `n_boot` draws.
    Invalid records (`results.invalid`) raise, unless `skip_invalid`: then they are left out and
    listed in `Scores.excluded`. Step-capped smoke runs are left out (and listed) unless
    `include_smoke`. Settings that change a score's meaning must agree (algoperf.comparable),
    else this raises naming them; so does an empty folder. Records failing their signature check
    (`results.bad_signatures`) raise, unless `trust_unsigned`: then they are listed in
    `Scores.unverified` and the warnings. Doubts are returned in `Scores.warnings` and emitted
    as Python warnings.
    """
    options = replace(options or ScoreOptions(), **changes)
    measure, trust_unsigned = options.measure, options.trust_unsigned
    if not trust_unsigned:
        refuse_untrusted(results)
    if not options.skip_invalid:
        refuse_invalid(results)
    excluded = list(results.invalid)
    found: list[str] = []
    trials = results.trials
    if trials is None or len(trials) == 0:
        detail = f" {len(results.invalid)} records are not valid." if results.invalid else ""
        raise AlgoperfError(
            "no complete trials to score: the results folder holds no valid record.json."
            f"{detail} Run a sweep first (algoperf sweep ...) or point to the folder it wrote."
        )
    # Only the columns scoring reads: the rest (hparams, software, ...) would slow every take.
    wanted = [*SCORED_COLUMNS, *(c for c in SETTINGS if c in trials.columns and c not in SCORED_COLUMNS)]
    trials = trials[[c for c in wanted if c in trials.columns]].copy()
    for column in SCORED_COLUMNS:
        if column not in trials.columns:
            trials[column] = None
    for column in ("sweep", "status", "path"):  # grouping keys: a missing value is "", not NaN
        trials[column] = trials[column].fillna("").astype(str)
    smoke = smoke_runs(trials)
    smoke_paths: list[str] = []
    if smoke.any() and not options.include_smoke:
        smoke_paths = list(trials.loc[smoke, "path"])
        caps = sorted({int(v) for v in trials.loc[smoke, "max_steps"]})
        excluded.append(
            f"{int(smoke.sum())} smoke runs (trials capped by max_steps={', '.join(map(str, caps))}, "
            f"e.g. {trials.loc[smoke, 'path'].iloc[0]}): left out of leaderboards; "
            "--include-smoke scores them"
        )
        trials = trials[~smoke]
        if trials.empty:
            raise AlgoperfError(
                "every trial is a smoke run (capped by max_steps), and smoke runs are left out of "
                "leaderboards. Run the sweep without max_steps, or pass --include-smoke to score them."
            )
    trials["competitor"] = _competitor_names(trials)
    try:
        found += refuse_conflicts(trials, uneven_counts_ok=bool(results.invalid))
    except AlgoperfError as e:
        if not smoke_paths:
            raise
        # Unequal counts may come from the smoke runs just left out: name them.
        shown = ", ".join(smoke_paths[:10]) + (
            f" and {len(smoke_paths) - 10} more" if len(smoke_paths) > 10 else ""
        )
        raise AlgoperfError(
            f"{e}\nLeft out before this check as smoke runs (capped by max_steps): {shown}; "
            "--include-smoke scores them."
        ) from None
    trials["group"] = trials["framework"].astype(str) if measure == "time" else ALL_FRAMEWORKS
    trials["value"] = _finite_or_inf(trials[MEASURES[measure]])
    studies = study_table(trials, measure)
    meta = _workload_meta(trials)
    workload_names = list(meta.index)

    rng = np.random.default_rng(options.seed)
    leaderboard_rows: list[dict[str, Any]] = []
    workload_rows: list[dict[str, Any]] = []
    profile_frames: list[pd.DataFrame] = []
    for group, group_trials in trials.groupby("group", sort=True):
        board, per_workload, profiles, group_warnings = _score_group(
            str(group),
            group_trials,
            studies[studies["group"] == group],
            meta,
            options,
            rng,
        )
        leaderboard_rows += board
        workload_rows += per_workload
        profile_frames.append(profiles)
        found += group_warnings

    leaderboard = (
        pd.DataFrame(leaderboard_rows)
        .sort_values(["group", "score", "competitor"], ascending=[True, False, True], kind="stable")
        .reset_index(drop=True)
    )
    # equal scores share a rank (1, 1, 3), as on any leaderboard
    ranks = leaderboard.groupby("group")["score"].rank(method="min", ascending=False)
    leaderboard.insert(0, "rank", ranks.astype(int))
    found = list(dict.fromkeys(found))
    for message in found:
        warnings.warn(message, stacklevel=2)
    # Not a Python warning: the caller asked for these (trust_unsigned); the report lists them.
    unverified = list(results.bad_signatures) if trust_unsigned else []
    found += [f"unverified record (fails its signature check, scored anyway): {line}" for line in unverified]
    hardware = trials["hardware"].iloc[0]
    return Scores(
        leaderboard=leaderboard,
        workloads=pd.DataFrame(workload_rows),
        studies=studies,
        profiles=pd.concat(profile_frames, ignore_index=True),
        measure=measure,
        tau_max=float(options.tau_max),
        reference=options.reference,
        ruleset=str(trials["ruleset"].iloc[0]),
        hardware=dict(hardware) if isinstance(hardware, dict) else {},
        workload_names=workload_names,
        num_trials=len(trials),
        warnings=found,
        unverified=unverified,
        excluded=excluded,
    )


def _reference_index(
    reference: str | None, competitors: list[dict[str, Any]], competitor: dict[str, Any]
) -> int | None:
    """The reference for `competitor`: by competitor name, else by submission name in the
    competitor's own framework, else the only competitor with that submission name."""
    if reference is None:
        return None
    for i, c in enumerate(competitors):
        if c["competitor"] == reference:
            return i
    same_submission = [i for i, c in enumerate(competitors) if c["submission"] == reference]
    for i in same_submission:
        if competitors[i]["framework"] == competitor["framework"]:
            return i
    return same_submission[0] if len(same_submission) == 1 else None
