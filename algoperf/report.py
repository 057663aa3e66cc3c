"""The score report: leaderboard.csv, leaderboard.md, profile.png, curves.png and report.html.

Everything is derived from `scoring.score` on a results folder; the HTML is self-contained
(images inlined as data URIs) so it opens offline. Never imports torch or jax.
"""

from __future__ import annotations

import base64
import html
import math
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from matplotlib.figure import Figure
from matplotlib.lines import Line2D

from algoperf import scoring
from algoperf.errors import AlgoperfError
from algoperf.results import TRIAL_KEYS, Results, load, refuse_invalid, refuse_untrusted

DPI = 150
MEASURE_LABELS = {"time": "time to target (submission time)", "steps": "steps to target"}
FRAMEWORK_LINESTYLES = {"torch": "-", "jax": "--"}
OTHER_LINESTYLES = ("-.", ":")
GRID_STYLE = {"color": "#d9d9d9", "linewidth": 0.6}


def write_report(
    results_dir: str | Path,
    out_dir: str | Path | None = None,
    measure: str = "time",
    tau_max: float = scoring.DEFAULT_TAU_MAX,
    reference: str | None = scoring.DEFAULT_REFERENCE,
    n_boot: int = scoring.DEFAULT_N_BOOT,
    seed: int = 0,
    trust_unsigned: bool = False,
) -> dict[str, Path]:
    """Load, score and write the five report files into `out_dir` (default: `results_dir`).

    Returns {"leaderboard_csv", "leaderboard_md", "profile_png", "curves_png", "report_html"}
    mapped to the paths written. Records failing their signature check are refused, unless
    `trust_unsigned`: then they are scored and the report is marked unverified.
    """
    results = load_for_scoring(results_dir, trust_unsigned)
    scores = scoring.score(results, measure, tau_max, reference, n_boot, seed, trust_unsigned=trust_unsigned)
    return render_report(results, scores, results_dir if out_dir is None else out_dir)


def load_for_scoring(
    results_dir: str | Path, trust_unsigned: bool = False, skip_invalid: bool = False
) -> Results:
    """The trials under `results_dir`; AlgoperfError for bad signatures (unless trusted), invalid
    records (unless skipped) or none at all."""
    results = load(results_dir, trust_unsigned=trust_unsigned)
    if not trust_unsigned:
        refuse_untrusted(results)
    if not skip_invalid:
        refuse_invalid(results)
    if len(results.trials) == 0:
        detail = f" ({len(results.invalid)} invalid records)" if results.invalid else ""
        raise AlgoperfError(
            f"no complete trials under {results_dir}{detail}: nothing to score. Run a sweep "
            "into that folder first, or point to the folder a sweep wrote."
        )
    return results


def render_report(results: Results, scores: scoring.Scores, out_dir: str | Path) -> dict[str, Path]:
    """Write the report files for already computed `scores` of `results` into `out_dir`."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    paths = {
        "leaderboard_csv": out_dir / "leaderboard.csv",
        "leaderboard_md": out_dir / "leaderboard.md",
        "profile_png": out_dir / "profile.png",
        "curves_png": out_dir / "curves.png",
        "report_html": out_dir / "report.html",
    }
    scores.leaderboard.to_csv(paths["leaderboard_csv"], index=False)
    paths["leaderboard_md"].write_text(leaderboard_markdown(scores), encoding="utf-8")
    styles = competitor_styles(scores.leaderboard)
    plot_profiles(scores, styles).savefig(paths["profile_png"], dpi=DPI, bbox_inches="tight")
    plot_curves(results, scores, styles).savefig(paths["curves_png"], dpi=DPI, bbox_inches="tight")
    paths["report_html"].write_text(
        report_html(scores, paths["profile_png"], paths["curves_png"]), encoding="utf-8"
    )
    return paths


# ---- text ------------------------------------------------------------------------------------


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

    def markdown(self) -> str:
        if self.status == "missed":
            text = "✗"
        else:
            text = f"{self.value} ✓" + (f" ({self.ratio})" if self.ratio else "")
        return text + (" *" if self.unstable else "")


def workload_cell(row: pd.Series, workload: str, scores: scoring.Scores, unstable: bool) -> Cell:
    """The cell of `row` (a leaderboard row) for `workload`."""
    if not row[f"{workload}/reached"]:
        return Cell("—", "", "missed", unstable)
    column = "steps_to_target" if scores.measure == "steps" else "time_to_target_s"
    value = format_value(row[f"{workload}/{column}"], scores.measure)
    if scores.measure == "time":  # steps too: they are comparable across hardware
        value += f" · {format_value(row[f'{workload}/steps_to_target'], 'steps')}"
    ratio = row[f"{workload}/ratio"]
    if not math.isfinite(ratio):
        return Cell(value, f">{scores.tau_max:g}×", "slow", unstable)
    if ratio == 1.0:
        return Cell(value, "", "best", unstable)
    return Cell(value, f"{ratio:.2f}×", "reached", unstable)


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
    return f"{studies} studies per submission and workload, {scores.num_trials} trials"


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


def summary_line(scores: scoring.Scores) -> str:
    return (
        f"Measure: {MEASURE_LABELS[scores.measure]} · τ_max = {scores.tau_max:g} · "
        f"ruleset {scores.ruleset} · {_studies_line(scores)} · hardware {_hardware_line(scores)}"
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


def _groups(scores: scoring.Scores) -> list[tuple[str, pd.DataFrame]]:
    return [(str(g), rows) for g, rows in scores.leaderboard.groupby("group", sort=True)]


def _group_title(group: str, scores: scoring.Scores) -> str | None:
    if len(_groups(scores)) == 1:
        return None
    return f"{group} (time is compared within one framework only)"


def _table_rows(scores: scoring.Scores, rows: pd.DataFrame) -> tuple[list[str], list[list[Any]]]:
    """Header and cells of one leaderboard table; each cell is text or (text, status)."""
    unstable = set(
        zip(
            scores.workloads.loc[~scores.workloads["stable"], "competitor"],
            scores.workloads.loc[~scores.workloads["stable"], "workload"],
            strict=True,
        )
    )
    reference = rows["reference"].dropna()
    speedup_header = None
    if len(reference):
        names = rows.loc[reference.index, "reference"].map(
            dict(zip(rows["competitor"], rows["submission"], strict=True))
        )
        speedup_header = f"speedup vs {', '.join(dict.fromkeys(names.fillna(reference)))}"
    header = ["rank", "submission", "framework", "score [95% CI]"]
    header += [speedup_header] if speedup_header else []
    header += scores.workload_names
    table = []
    for _, row in rows.iterrows():
        cells: list[Any] = [row["rank"], row["submission"], row["framework"], format_score(row)]
        if speedup_header:
            speedup = row["speedup_vs_reference"]
            cells.append(f"{speedup:.2f}×" if math.isfinite(speedup) else "—")
        for workload in scores.workload_names:
            unstable_here = (row["competitor"], workload) in unstable
            cells.append(workload_cell(row, workload, scores, unstable_here))
        table.append(cells)
    return header, table


def excluded_heading(scores: scoring.Scores) -> str:
    count = len(scores.excluded)
    return f"Left out of this score ({count} entr{'ies' if count > 1 else 'y'})"


def leaderboard_markdown(scores: scoring.Scores) -> str:
    """The leaderboard as markdown: summary line, what was left out, one table per group,
    stability, warnings."""
    title = f"Leaderboard: {scores.label}" if scores.label else "Leaderboard"
    lines = [f"# {title}", "", summary_line(scores), ""]
    unverified = unverified_line(scores)
    if unverified:
        lines += [f"**{unverified}**", ""]
    if scores.excluded:
        lines += [f"## {excluded_heading(scores)}", ""] + [f"- {line}" for line in scores.excluded] + [""]
    for group, rows in _groups(scores):
        title = _group_title(group, scores)
        if title:
            lines += [f"## {title}", ""]
        header, table = _table_rows(scores, rows)
        lines.append("| " + " | ".join(header) + " |")
        lines.append("|" + "|".join("---:" if i in (0, 3) else "---" for i in range(len(header))) + "|")
        for cells in table:
            texts = [c.markdown() if isinstance(c, Cell) else str(c) for c in cells]
            lines.append("| " + " | ".join(t.replace("|", "\\|") for t in texts) + " |")
        lines.append("")
    lines += [
        f"Cells: median {MEASURE_LABELS[scores.measure]} over studies, ✓ reached / ✗ missed, "
        "(r×) the ratio to the fastest; * marks a result that is unstable across studies.",
        "",
        "## Stability",
        "",
    ]
    lines += [f"- {note}" for note in stability_notes(scores)]
    if scores.warnings:
        lines += ["", "## Warnings", ""] + [f"- {w}" for w in scores.warnings]
    return "\n".join(lines) + "\n"


# ---- pictures --------------------------------------------------------------------------------


def competitor_styles(leaderboard: pd.DataFrame) -> dict[str, dict[str, Any]]:
    """Colour per submission (the same in every figure), line style per framework."""
    submissions = list(dict.fromkeys(leaderboard["submission"]))
    colours = _palette(len(submissions))
    frameworks = sorted(set(leaderboard["framework"]))
    others = iter(OTHER_LINESTYLES * len(frameworks))
    linestyles = {f: FRAMEWORK_LINESTYLES.get(f) or next(others) for f in frameworks}
    return {
        row.competitor: {
            "color": colours[submissions.index(row.submission)],
            "linestyle": linestyles[row.framework],
        }
        for row in leaderboard.itertuples()
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


def plot_profiles(scores: scoring.Scores, styles: dict[str, dict[str, Any]]) -> Figure:
    """Performance profiles rho_s(tau) as exact step functions, one panel per group."""
    groups = _groups(scores)
    most = max(len(rows) for _, rows in groups)
    legend_columns = 1 if most <= 12 else 2
    fig = Figure(figsize=(8.0 + 2.6 * legend_columns, 4.3 * len(groups)), dpi=DPI, layout="constrained")
    axes = fig.subplots(len(groups), 1, squeeze=False)[:, 0]
    xlabel = "τ (ratio to best time)" if scores.measure == "time" else "τ (ratio to fewest steps)"
    for ax, (group, rows) in zip(axes, groups, strict=True):
        profiles = scores.profiles[scores.profiles["group"] == group]
        # The best is drawn first and widest, so equal curves stay visible on top of each other.
        widths = np.linspace(3.6, 1.5, len(rows)) if len(rows) > 1 else [2.2]
        one_framework = rows["framework"].nunique() == 1
        for (_, row), width in zip(rows.iterrows(), widths, strict=True):
            curve = profiles[profiles["competitor"] == row["competitor"]]
            style = dict(styles[row["competitor"]])
            if one_framework:  # the line style tells frameworks apart; here there is only one
                style["linestyle"] = "-"
            ax.step(
                curve["tau"],
                curve["fraction"],
                where="post",
                linewidth=width,
                alpha=0.9,
                label=f"{row['competitor']}  {row['score']:.2f}",
                **style,
            )
        ax.set_xlim(1.0, scores.tau_max)
        ax.set_ylim(-0.02, 1.04)
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


def best_trial_evals(results: Results, scores: scoring.Scores) -> pd.DataFrame:
    """The evals of each competitor's best trial per workload (fastest to target, else best
    validation metric), with the competitor's name."""
    best = scores.workloads.dropna(subset=["best_trial"])
    if best.empty or results.evals.empty:
        return pd.DataFrame(columns=[*results.evals.columns, "competitor"])
    keys = pd.DataFrame(
        {
            "sweep": best["best_sweep"].astype(str).to_numpy(),
            "submission": best["submission"].astype(str).to_numpy(),
            "workload": best["workload"].astype(str).to_numpy(),
            "framework": best["framework"].astype(str).to_numpy(),
            "study": best["best_study"].astype("int64").to_numpy(),
            "trial": best["best_trial"].astype("int64").to_numpy(),
            "competitor": best["competitor"].to_numpy(),
        }
    )
    evals = results.evals.astype({"study": "int64", "trial": "int64"})
    for key in ("sweep", "submission", "workload", "framework"):  # as scoring keys them
        evals[key] = evals[key].fillna("").astype(str)
    return evals.merge(keys, on=list(TRIAL_KEYS), how="inner")


def plot_curves(results: Results, scores: scoring.Scores, styles: dict[str, dict[str, Any]]) -> Figure:
    """Validation metric against time (or steps) of each competitor's best trial, per workload."""
    names = scores.workload_names
    columns = min(2, len(names))
    rows_count = math.ceil(len(names) / columns)
    fig = Figure(figsize=(5.6 * columns, 3.8 * rows_count + 0.6), dpi=DPI, layout="constrained")
    axes = fig.subplots(rows_count, columns, squeeze=False).reshape(-1)
    evals = best_trial_evals(results, scores)
    x_column = "step" if scores.measure == "steps" else "submission_time_s"
    x_label = "step" if scores.measure == "steps" else "submission time (s)"
    order = list(scores.leaderboard["competitor"])
    for ax, workload in zip(axes, names, strict=False):
        meta = scores.workloads[scores.workloads["workload"] == workload].iloc[0]
        higher = bool(meta["metric_higher_is_better"])
        for competitor in order:
            curve = evals[(evals["workload"] == workload) & (evals["competitor"] == competitor)]
            curve = curve.sort_values(x_column)
            if curve.empty:
                continue
            ax.plot(
                curve[x_column],
                curve["validation_metric"],
                linewidth=1.8,
                marker="o",
                markersize=2.5,
                **styles[competitor],
            )
        target = float(meta["target"])
        ax.axhline(target, color="#444444", linestyle=(0, (5, 3)), linewidth=1.1, zorder=1)
        # At the left the curves are still far from the target (below it when higher is
        # better, above it otherwise), so the label rarely collides with a curve there.
        ax.annotate(
            f"target {target:g}",
            xy=(0.0, target),
            xycoords=("axes fraction", "data"),
            xytext=(4, 3),
            textcoords="offset points",
            ha="left",
            va="bottom",
            fontsize=8.5,
            color="#333333",
        )
        ax.set_xlim(left=0)
        direction = "higher is better" if higher else "lower is better"
        ax.set_ylabel(f"validation {meta['metric_name']} ({direction})")
        ax.set_xlabel(x_label)
        ax.set_title(workload, loc="left", fontweight="bold")
        _style_axes(ax)
    handles = [Line2D([], [], linewidth=1.8, label=competitor, **styles[competitor]) for competitor in order]
    spare = axes[len(names) :]
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
            ncols=min(len(handles), 5),
            frameon=False,
            fontsize=9,
        )
    fig.suptitle(
        "Validation curves of each submission's best trial (fastest to target, else best validation metric)",
        x=0.01,
        ha="left",
        fontsize=11,
    )
    return fig


# ---- HTML ------------------------------------------------------------------------------------

CSS = """
body { font: 15px/1.5 system-ui, -apple-system, "Segoe UI", Roboto, sans-serif; color: #1d1d1f;
       max-width: 1240px; margin: 2rem auto; padding: 0 1.5rem; }
h1 { font-size: 1.7rem; margin-bottom: 0.2rem; }
h2 { font-size: 1.25rem; margin-top: 2.2rem; border-bottom: 1px solid #e5e5e5;
     padding-bottom: .3rem; }
h3 { font-size: 1.02rem; margin: 1.4rem 0 0.3rem; }
.summary { color: #555; margin-top: 0; }
.scroll { overflow-x: auto; }
table { border-collapse: collapse; margin: 0.5rem 0 0.8rem; font-size: 0.9rem;
        font-variant-numeric: tabular-nums; }
th, td { padding: 0.35rem 0.6rem; border-bottom: 1px solid #e8e8e8; text-align: left;
         white-space: nowrap; }
th { background: #f6f6f7; font-weight: 600; border-bottom: 2px solid #d8d8d8;
     white-space: normal; vertical-align: bottom; }
tbody tr:nth-child(even) { background: #fafafa; }
td.num { text-align: right; color: #555; }
td.score { font-weight: 600; }
.track { display: inline-block; width: 3.5rem; height: 0.55rem; background: #e4e9f0;
         border-radius: 2px; margin-right: .5rem; vertical-align: middle; overflow: hidden; }
.fill { display: block; height: 100%; background: #4c78a8; }
td.best { background: #e9f6ec; font-weight: 600; }
.mark.best, .mark.reached { color: #1a7f37; }
.mark.slow { color: #9a6700; }
.mark.missed { color: #cf222e; font-weight: 600; }
.ratio { display: block; color: #777; font-size: 0.78rem; line-height: 1.1; }
.unstable { color: #9a6700; font-weight: 700; margin-left: 0.2rem; }
.note { color: #555; font-size: 0.88rem; }
img { max-width: 100%; height: auto; border: 1px solid #eee; border-radius: 4px; }
.explain { background: #f6f8fa; border-left: 4px solid #4c78a8; padding: .2rem 1rem;
           border-radius: 3px; }
details summary { cursor: pointer; color: #333; }
ul.warnings li { color: #9a6700; }
ul.excluded li { color: #cf222e; overflow-wrap: anywhere; }
.unverified { background: #fff4e5; border-left: 4px solid #cf222e; padding: .4rem 1rem;
              font-weight: 600; }
footer { margin-top: 3rem; color: #888; font-size: 0.8rem; }
"""


def _data_uri(png: Path) -> str:
    return "data:image/png;base64," + base64.b64encode(png.read_bytes()).decode("ascii")


def _html_cell(cell: Cell) -> str:
    mark = f'<span class="mark {cell.status}">{cell.mark}</span>'
    if cell.status == "missed":
        body = mark
    else:
        ratio = f'<span class="ratio">{html.escape(cell.ratio)}</span>' if cell.ratio else ""
        body = f"{html.escape(cell.value)} {mark}"
    if cell.unstable:
        body += '<span class="unstable" title="unstable across studies">*</span>'
    if cell.status != "missed":
        body += ratio or '<span class="ratio">fastest</span>'
    return f'<td class="cell {cell.status}">{body}</td>'


def _html_table(scores: scoring.Scores, rows: pd.DataFrame) -> str:
    header, table = _table_rows(scores, rows)
    # <wbr> lets long workload names break after an underscore instead of widening the table
    head = "".join(f"<th>{html.escape(str(h)).replace('_', '_<wbr>')}</th>" for h in header)
    body = []
    for cells, (_, row) in zip(table, rows.iterrows(), strict=True):
        tds = []
        for i, cell in enumerate(cells):
            if isinstance(cell, Cell):
                tds.append(_html_cell(cell))
            elif i == 3:
                percent = max(0.0, min(1.0, row["score"])) * 100
                tds.append(
                    f'<td class="score"><span class="track"><span class="fill" '
                    f'style="width:{percent:.0f}%"></span></span>{html.escape(cell)}</td>'
                )
            elif i == 0:
                tds.append(f'<td class="num">{html.escape(str(cell))}</td>')
            else:
                tds.append(f"<td>{html.escape(str(cell))}</td>")
        body.append("<tr>" + "".join(tds) + "</tr>")
    return (
        f'<div class="scroll"><table><thead><tr>{head}</tr></thead>'
        f"<tbody>{''.join(body)}</tbody></table></div>"
    )


def report_html(scores: scoring.Scores, profile_png: Path, curves_png: Path) -> str:
    """A self-contained HTML page: leaderboard, profile, curves, stability and warnings."""
    tau = f"{scores.tau_max:g}"
    unit = "time" if scores.measure == "time" else "number of steps"
    parts = [
        "<!DOCTYPE html>",
        '<html lang="en"><head><meta charset="utf-8">',
        '<meta name="viewport" content="width=device-width, initial-scale=1">',
        f"<title>algoperf leaderboard</title><style>{CSS}</style></head><body>",
        f"<h1>algoperf leaderboard{html.escape(': ' + scores.label if scores.label else '')}</h1>",
        f'<p class="summary">{html.escape(summary_line(scores))}</p>',
    ]
    unverified = unverified_line(scores)
    if unverified:
        parts.append(f'<p class="unverified">{html.escape(unverified)}</p>')
    if scores.excluded:
        parts.append(f'<h2>{html.escape(excluded_heading(scores))}</h2><ul class="excluded">')
        parts += [f"<li>{html.escape(line)}</li>" for line in scores.excluded]
        parts.append("</ul>")
    parts.append("<h2>Leaderboard</h2>")
    for group, rows in _groups(scores):
        title = _group_title(group, scores)
        if title:
            parts.append(f"<h3>{html.escape(title)}</h3>")
        parts.append(_html_table(scores, rows))
    measure_label = html.escape(MEASURE_LABELS[scores.measure])
    parts.append(
        '<p class="note">Score: the benchmark score B in [0, 1] with its 95% bootstrap '
        f"confidence interval over studies. Cells: median {measure_label}"
        " over studies; ✓ reached, ✗ missed; (r×) the ratio to the fastest submission; "
        "* unstable across studies (see below).</p>"
    )
    parts += [
        "<h2>Performance profiles</h2>",
        '<div class="explain">',
        f"<p>For each submission, the curve at τ is the fraction of workloads on which it reached "
        f"the target within τ times the {unit} of the fastest submission on that workload. A curve "
        "that rises early and high is better: its value at τ = 1 is the fraction of workloads it "
        f"won, and its value at τ = {tau} the fraction it reached within {tau}× the best. "
        f"Slower than {tau}× counts as not reached.</p>",
        f"<p>The benchmark score is the area under the curve between τ = 1 and τ = {tau}, divided "
        f"by {scores.tau_max - 1:g}: 1 means fastest on every workload, 0 means never within "
        f"{tau}× the best.</p>",
        "</div>",
        f'<p><img alt="performance profiles" src="{_data_uri(profile_png)}"></p>',
        "<h2>Validation curves</h2>",
        '<p class="note">Each submission\'s best trial per workload: the fastest to reach the '
        "target (the dashed line), or, if none did, the one with the best validation metric.</p>",
        f'<p><img alt="validation curves" src="{_data_uri(curves_png)}"></p>',
        "<h2>Stability across studies</h2>",
    ]
    notes = stability_notes(scores)
    items = "".join(f"<li>{html.escape(note)}</li>" for note in notes)
    if len(notes) > 8:
        unstable = int((~scores.workloads["stable"]).sum())
        parts.append(
            f"<details><summary>{unstable} of {len(scores.workloads)} results are unstable across "
            f"studies (marked * above)</summary><ul>{items}</ul></details>"
        )
    else:
        parts.append(f"<ul>{items}</ul>")
    if scores.warnings:
        parts.append('<h2>Warnings</h2><ul class="warnings">')
        parts += [f"<li>{html.escape(w)}</li>" for w in scores.warnings]
        parts.append("</ul>")
    generated = datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC")
    parts.append(f"<footer>Generated by algoperf score on {generated}.</footer></body></html>")
    return "\n".join(parts) + "\n"
