"""The report's figures (matplotlib, no display needed): performance profiles and validation
curves. Data comes shaped by algoperf.report_tables. Never imports torch or jax."""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import pandas as pd
from matplotlib.figure import Figure
from matplotlib.lines import Line2D

from algoperf import scoring
from algoperf.report_tables import WorkloadProgress, profile_overlaps

DPI = 150
FRAMEWORK_LINESTYLES = {"torch": "-", "jax": "--"}
OTHER_LINESTYLES = ("-.", ":")
MARKERS = ("o", "s", "^", "D", "v", "P", "X", "*", "<", ">", "h", "p")
GRID_STYLE = {"color": "#d9d9d9", "linewidth": 0.6}
#: Vertical distance between profile lines that would otherwise coincide.
OVERLAP_OFFSET = 0.012


def competitor_styles(competitors: pd.DataFrame) -> dict[str, dict[str, Any]]:
    """Colour and marker per submission (the same in every figure), line style per framework.

    `competitors` has the columns competitor, submission and framework, one row each.
    """
    submissions = list(dict.fromkeys(competitors["submission"]))
    colours = _palette(len(submissions))
    frameworks = sorted(set(competitors["framework"]))
    others = iter(OTHER_LINESTYLES * len(frameworks))
    linestyles = {f: FRAMEWORK_LINESTYLES.get(f) or next(others) for f in frameworks}
    return {
        row.competitor: {
            "color": colours[submissions.index(row.submission)],
            "linestyle": linestyles[row.framework],
            "marker": MARKERS[submissions.index(row.submission) % len(MARKERS)],
        }
        for row in competitors.itertuples()
    }


def _palette(n: int) -> list[Any]:
    from matplotlib import colormaps

    name = "tab10" if n <= 10 else "tab20"
    colours = colormaps[name].colors
    return [colours[i % len(colours)] for i in range(n)]


def _style_axes(ax: Any) -> None:
    ax.grid(True, **GRID_STYLE)
    ax.set_axisbelow(True)
    for side in ("top", "right"):
        ax.spines[side].set_visible(False)


def _overlap_places(scores: scoring.Scores) -> dict[tuple[str, str], tuple[int, int]]:
    """(group, competitor) -> (its place, how many) in a set of identical profiles."""
    places = {}
    for group, names in profile_overlaps(scores):
        for k, name in enumerate(names):
            places[(group, name)] = (k, len(names))
    return places


def _markers_at(fraction: np.ndarray, place: tuple[int, int] | None) -> list[int]:
    """Where a profile's markers go: where it steps up (and its start when above 0); a profile
    that others coincide with also gets markers along the way, staggered so each shows."""
    steps = (np.flatnonzero(np.diff(fraction) != 0) + 1).tolist()
    at = ([0] if len(fraction) and fraction[0] > 0 else []) + steps
    if place is not None and len(fraction) > 12:
        k, count = place
        spacing = len(fraction) // 6
        at += list(range(spacing * (k + 1) // (count + 1), len(fraction), spacing))
    return sorted(set(at))


def plot_profiles(scores: scoring.Scores, styles: dict[str, dict[str, Any]]) -> Figure:
    """Performance profiles rho_s(tau) as exact step functions, one panel per group; identical
    profiles are drawn slightly apart, each with its marker at its steps."""
    groups = [(str(g), rows) for g, rows in scores.leaderboard.groupby("group", sort=True)]
    most = max(len(rows) for _, rows in groups)
    legend_columns = 1 if most <= 12 else 2
    fig = Figure(figsize=(8.0 + 2.6 * legend_columns, 4.3 * len(groups)), dpi=DPI, layout="constrained")
    axes = fig.subplots(len(groups), 1, squeeze=False)[:, 0]
    xlabel = "τ (ratio to best time)" if scores.measure == "time" else "τ (ratio to fewest steps)"
    places = _overlap_places(scores)
    for ax, (group, rows) in zip(axes, groups, strict=True):
        profiles = scores.profiles[scores.profiles["group"] == group]
        # The best is drawn first and widest, so equal curves stay visible on top of each other.
        widths = np.linspace(3.6, 1.5, len(rows)) if len(rows) > 1 else [2.2]
        one_framework = rows["framework"].nunique() == 1
        for (_, row), width in zip(rows.iterrows(), widths, strict=True):
            curve = profiles[profiles["competitor"] == row["competitor"]].sort_values("tau")
            fraction = curve["fraction"].to_numpy(float)
            style = dict(styles[row["competitor"]])
            if one_framework:  # the line style tells frameworks apart; here there is only one
                style["linestyle"] = "-"
            place = places.get((group, row["competitor"]))
            offset = 0.0  # identical profiles are spread a little apart, centred on the true value
            if place is not None:
                offset = (place[0] - (place[1] - 1) / 2) * min(OVERLAP_OFFSET, 0.05 / place[1])
            ax.step(
                curve["tau"],
                fraction + offset,
                where="post",
                linewidth=width,
                alpha=0.9,
                markevery=_markers_at(fraction, place),
                markersize=6,
                markeredgecolor="white",
                markeredgewidth=0.7,
                clip_on=False,  # a marker at τ = 1 sits on the axis
                label=f"{row['competitor']}  {row['score']:.2f}",
                **style,
            )
        ax.set_xlim(1.0, scores.tau_max)
        ax.set_ylim(-0.04, 1.06)
        ax.set_xlabel(xlabel)
        ax.set_ylabel("fraction of workloads ≤ τ")
        title = "Performance profiles" + (f" · {group}" if len(groups) > 1 else "")
        ax.set_title(title, loc="left", fontweight="bold")
        _style_axes(ax)
        ax.legend(
            title="submission  score",
            loc="upper left",
            bbox_to_anchor=(1.01, 1.0),
            fontsize=9,
            title_fontsize=9,
            frameon=False,
            ncols=legend_columns,
            alignment="left",
        )
    return fig


def _plot_trial(ax: Any, evals: pd.DataFrame, x_column: str, style: dict[str, Any], best: bool) -> None:
    """One trial's validation curve: a marker at every eval (a one-eval trial is a dot), its
    best trial drawn bold on top, the others thin and faint behind."""
    evals = evals.sort_values(x_column)
    ax.plot(
        evals[x_column],
        evals["validation_metric"],
        linewidth=1.8 if best else 0.9,
        markersize=6 if best else 3.5,
        markeredgecolor="white" if best else style["color"],
        markeredgewidth=0.7,
        alpha=0.95 if best else 0.4,
        zorder=3 if best else 2,
        **style,
    )


def _target_line(ax: Any, progress: WorkloadProgress) -> None:
    if not math.isfinite(progress.target):
        return
    ax.axhline(progress.target, color="#444444", linestyle=(0, (5, 3)), linewidth=1.1, zorder=1)
    # At the left the curves are still far from the target (below it when higher is better,
    # above it otherwise), so the label rarely collides with a curve there.
    ax.annotate(
        f"target {progress.target:g}",
        xy=(0.0, progress.target),
        xycoords=("axes fraction", "data"),
        xytext=(4, 3),
        textcoords="offset points",
        ha="left",
        va="bottom",
        fontsize=8.5,
        color="#333333",
    )


def plot_curves(
    evals: pd.DataFrame,
    progress: list[WorkloadProgress],
    competitors: pd.DataFrame,
    styles: dict[str, dict[str, Any]],
    measure: str,
) -> Figure:
    """Validation metric at every eval against time (or steps), one panel per workload: every
    trial (or, on a workload with many, each competitor's best), the target as a dashed line.

    `evals` is `report_tables.curve_evals`; `competitors` (competitor, submission, framework)
    gives the legend's order.
    """
    columns = min(2, len(progress))
    rows_count = math.ceil(len(progress) / columns)
    fig = Figure(figsize=(5.6 * columns, 3.8 * rows_count + 0.6), dpi=DPI, layout="constrained")
    axes = fig.subplots(rows_count, columns, squeeze=False).reshape(-1)
    x_column = "step" if measure == "steps" else "submission_time_s"
    by_workload = dict(tuple(evals.groupby("workload", sort=False))) if len(evals) else {}
    for ax, table in zip(axes, progress, strict=False):
        panel = by_workload.get(table.workload, evals.iloc[:0])
        for (competitor, _, best), trial in panel.groupby(["competitor", "path", "best"], sort=True):
            _plot_trial(ax, trial, x_column, styles[competitor], bool(best))
        _target_line(ax, table)
        ax.set_xlim(left=0)
        ax.set_ylabel(f"validation {table.metric_name} ({table.direction})")
        ax.set_xlabel("step" if measure == "steps" else "submission time (s)")
        ax.set_title(table.workload, loc="left", fontweight="bold")
        _style_axes(ax)
    capped = set(evals.loc[evals["step_capped"].astype(bool), "competitor"]) if len(evals) else set()
    handles = [
        Line2D(
            [],
            [],
            linewidth=1.8,
            markersize=6,
            label=name + (" (step-capped)" if name in capped else ""),
            **styles[name],
        )
        for name in competitors["competitor"]
    ]
    _curve_legend(fig, axes[len(progress) :], handles)
    fig.suptitle(
        "Validation curves, a marker per eval (bold: each submission's best trial, the fastest to "
        "target, else the best validation metric; faint: its other trials)",
        x=0.01,
        ha="left",
        fontsize=11,
    )
    return fig


def _curve_legend(fig: Figure, spare: Any, handles: list[Line2D]) -> None:
    for ax in spare:
        ax.set_axis_off()
    if len(spare) and len(handles) <= 24:  # an empty panel: the legend fits there
        spare[0].legend(
            handles=handles,
            loc="center",
            ncols=1 if len(handles) <= 12 else 2,
            frameon=False,
            fontsize=9,
            title="submission",
            title_fontsize=9,
        )
    else:
        fig.legend(
            handles=handles,
            loc="outside lower center",
            ncols=max(1, min(len(handles), 5)),
            frameon=False,
            fontsize=9,
        )
