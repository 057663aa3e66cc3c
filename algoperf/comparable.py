"""Which trials may share one score: settings that change a score's meaning must agree.

A time to target means something only against the budget, eval schedule, target, hardware,
tuning ruleset and code it was measured under, and a study's best trial only against the same
number of trials per study. `conflicts` names every disagreement; `split_by_settings` groups
competitors that agree among themselves (scored apart when the user asks); `smoke_runs` marks
step-capped trials, which are left out of leaderboards by default. Never imports torch or jax.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pandas as pd

from algoperf.errors import AlgoperfError
from algoperf.results import Results

#: setting -> the trials within which it must agree: () for every trial of the score.
SETTINGS: dict[str, tuple[str, ...]] = {
    "hardware fingerprint": (),
    "hardware_profile": (),
    "ruleset": (),
    "max_submission_time_s": ("workload", "framework"),
    "eval_every_steps": ("workload", "framework"),
    "eval_period_s": ("workload", "framework"),
    "max_steps": ("workload", "framework"),
    "stop_at_target": ("workload", "framework"),
    "target": ("workload",),
    "size": ("workload",),
    "workload_sha256": ("workload",),
    "submission_sha256": ("submission",),
}

SPLIT_FIX = (
    "Re-run the odd trials under the sweep's settings, move them to a results folder of their "
    "own, or pass --split-settings to score each group of competitors that agree on their own."
)


def smoke_runs(trials: pd.DataFrame) -> pd.Series:
    """Trials run under a step cap (max_steps): smoke tests, not leaderboard entries."""
    if "max_steps" not in trials:
        return pd.Series(False, index=trials.index)
    return trials["max_steps"].notna()


def _setting_values(trials: pd.DataFrame, setting: str) -> pd.Series:
    if setting == "hardware fingerprint":
        hardware = trials["hardware"]
        return hardware.map(lambda h: str(h.get("fingerprint")) if isinstance(h, dict) else "(none)")
    return trials[setting].map(lambda v: "(none)" if v is None or v != v else str(v))


def _examples(rows: pd.DataFrame) -> str:
    return f"{len(rows)} trial{'s' if len(rows) > 1 else ''}, e.g. {rows['path'].iloc[0]}"


def conflicts(trials: pd.DataFrame) -> list[str]:
    """Every setting that differs inside one score, one line each, naming values and records."""
    found = []
    for setting, scope in SETTINGS.items():
        values = _setting_values(trials, setting)
        groups = trials.groupby(list(scope), sort=True) if scope else [((), trials)]
        for where, rows in groups:
            distinct = values[rows.index]
            if distinct.nunique() < 2:
                continue
            place = (
                f" on {'/'.join(map(str, where if isinstance(where, tuple) else (where,)))}" if scope else ""
            )
            options = "; ".join(
                f"{value} ({_examples(rows.loc[distinct[distinct == value].index])})"
                for value in sorted(distinct.unique())
            )
            found.append(f"{setting} differs{place}: {options}")
    found += _trial_count_conflicts(trials)
    return found


def _trial_count_conflicts(trials: pd.DataFrame) -> list[str]:
    """Every study of every (competitor, workload) must hold as many trials as the others, and
    every (competitor, workload) as many studies: a study's best of 3 is not a best of 5."""
    per_study = trials.groupby(["competitor", "workload", "sweep", "study"], sort=True).size()
    per_pair = per_study.groupby(level=["competitor", "workload"]).size()
    found = []
    for counts, what, unit, hint in (
        (
            per_study,
            "trials per study",
            "studies",
            "; an unfinished sweep? Finish it (re-run the same sweep command) before scoring",
        ),
        (per_pair, "studies per workload", "(competitor, workload) pairs", ""),
    ):
        if counts.nunique() < 2:
            continue
        tally = counts.value_counts().sort_index()
        fewest = counts[counts == tally.index[0]].index[0]
        where = f"{fewest[0]} on {fewest[1]}" + (f", study {fewest[3]}" if len(fewest) > 2 else "")
        found.append(
            f"{what} differ: "
            + ", ".join(f"{n} {what.split()[0]} in {k} {unit}" for n, k in tally.items())
            + f" (e.g. {where}){hint}"
        )
    return found


def refuse_conflicts(trials: pd.DataFrame, *, uneven_counts_ok: bool = False) -> list[str]:
    """Raise AlgoperfError naming every conflict. With `uneven_counts_ok` (records were left out
    on request, so some studies are short), unequal trial and study counts are returned as
    warnings instead."""
    found = conflicts(trials)
    counts = [line for line in found if line.startswith(("trials per", "studies per"))]
    if uneven_counts_ok:
        found = [line for line in found if line not in counts]
    if found:
        raise AlgoperfError(
            "the records were made under different settings, so they cannot share one score:\n"
            + "\n".join(f"  {line}" for line in found)
            + f"\n{SPLIT_FIX}"
        )
    return [f"{line} (records were left out)" for line in counts] if uneven_counts_ok else []


def split_by_settings(trials: pd.DataFrame) -> Iterator[tuple[str, pd.DataFrame]]:
    """Groups of competitors whose settings agree: (label, trials), each scored on its own.

    A competitor whose own trials disagree (two code versions, two budgets on one workload)
    cannot be placed in any group: that raises, naming the conflicts.
    """
    trials = trials.assign(
        competitor=trials["submission"].astype(str) + " [" + trials["framework"].astype(str) + "]"
    )
    signatures: dict[str, tuple[Any, ...]] = {}
    for competitor, rows in trials.groupby("competitor", sort=True):
        own = [line for line in conflicts(rows) if not line.startswith(("trials per", "studies per"))]
        if own:
            raise AlgoperfError(
                f"{competitor}'s own trials were made under different settings, so it cannot be "
                "scored in any group:\n" + "\n".join(f"  {line}" for line in own) + "\nRe-run the "
                "odd trials under the sweep's settings, or move them to a results folder of their own."
            )
        signatures[str(competitor)] = tuple(
            (
                setting,
                tuple(
                    sorted(
                        rows.assign(_v=_setting_values(rows, setting))[[*scope, "_v"]]
                        .astype(str)
                        .drop_duplicates()
                        .itertuples(index=False, name=None)
                    )
                ),
            )
            for setting, scope in SETTINGS.items()
            if scope != ("submission",)
        )
    by_signature: dict[tuple[Any, ...], list[str]] = {}
    for competitor, signature in signatures.items():
        by_signature.setdefault(signature, []).append(competitor)
    for number, members in enumerate(by_signature.values(), start=1):
        label = f"settings_{number}" if len(by_signature) > 1 else ""
        yield label, trials[trials["competitor"].isin(members)].drop(columns="competitor")


def score_parts(results: Results, *, merge_sweeps: bool, split_settings: bool) -> list[tuple[str, Results]]:
    """The parts of a results folder scored apart: one per sweep (unless `merge_sweeps`), each
    cut into groups of competitors whose settings agree when `split_settings`. A label per part
    ("" for a folder scored whole) names its subfolder of the report."""
    trials = results.trials
    if trials.empty:
        return [("", results)]
    by_sweep = [("", trials)] if merge_sweeps else list(trials.groupby("sweep", sort=True))
    if len(by_sweep) == 1:
        by_sweep = [("", by_sweep[0][1])]
    parts = []
    for sweep, rows in by_sweep:
        groups = list(split_by_settings(rows)) if split_settings else [("", rows)]
        for label, group in groups:
            name = "/".join(part for part in (str(sweep), label) if part)
            parts.append((name, _subset(results, group)))
    return parts


def _subset(results: Results, trials: pd.DataFrame) -> Results:
    keys = ["sweep", "submission", "framework"]
    chosen = trials[keys].drop_duplicates()
    evals = results.evals.merge(chosen, on=keys, how="inner") if len(results.evals) else results.evals
    return Results(
        trials=trials.reset_index(drop=True),
        evals=evals,
        invalid=list(results.invalid),
        bad_signatures=list(results.bad_signatures),
    )


def describe_settings(trials: pd.DataFrame) -> str:
    """The settings a group of trials shares, for the heading of its report."""
    parts = []
    for setting in ("max_submission_time_s", "eval_every_steps", "eval_period_s", "max_steps"):
        values = sorted(
            {f"{w}: {v}" for w, v in zip(trials["workload"], _setting_values(trials, setting), strict=True)}
        )
        parts.append(f"{setting} {', '.join(values)}")
    return "; ".join(parts)
