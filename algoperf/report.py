"""The score report: leaderboard.csv, leaderboard.md, profile.png, curves.png and report.html,
and the summary `algoperf score` prints.

Everything is derived from `scoring.score` on a results folder and the trials it read:
algoperf.report_tables shapes what the report says, algoperf.report_plots draws the figures,
the jinja2 templates in algoperf/templates/ lay out the markdown and the HTML, and
algoperf.report_terminal prints the summary. The HTML is self-contained (CSS inline, images as
data URIs) so it opens offline. Never imports torch or jax.
"""

from __future__ import annotations

import base64
import functools
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, TextIO

import jinja2
from markupsafe import Markup, escape

from algoperf import report_plots as plots
from algoperf import report_tables as tables
from algoperf import report_terminal, scoring
from algoperf.errors import AlgoperfError
from algoperf.results import Results, load, refuse_invalid, refuse_untrusted


def write_report(
    results_dir: str | Path, out_dir: str | Path | None = None, **score_options: Any
) -> dict[str, Path]:
    """Load, score and write the five report files into `out_dir` (default: `results_dir`).

    `score_options` are `scoring.score`'s keywords (measure, tau_max, reference, n_boot, seed,
    trust_unsigned, skip_invalid, include_smoke), with its defaults. Returns {"leaderboard_csv",
    "leaderboard_md", "profile_png", "curves_png", "report_html"} mapped to the paths written.
    Records failing their signature check are refused, unless `trust_unsigned`: then they are
    scored and the report is marked unverified.
    """
    trust_unsigned = bool(score_options.get("trust_unsigned", False))
    skip_invalid = bool(score_options.get("skip_invalid", False))
    results = load_for_scoring(results_dir, trust_unsigned, skip_invalid)
    scores = scoring.score(results, **score_options)
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
    trials = tables.trial_frame(results, scores)
    progress = tables.progress_by_workload(trials)
    paths["leaderboard_md"].write_text(leaderboard_markdown(scores, progress), encoding="utf-8")
    competitors = tables.competitor_order(trials, scores)
    styles = plots.competitor_styles(competitors)
    plots.plot_profiles(scores, styles).savefig(paths["profile_png"], dpi=plots.DPI, bbox_inches="tight")
    curves = plots.plot_curves(
        tables.curve_evals(results, trials), progress, competitors, styles, scores.measure
    )
    curves.savefig(paths["curves_png"], dpi=plots.DPI, bbox_inches="tight")
    images = {"profile_uri": _data_uri(paths["profile_png"]), "curves_uri": _data_uri(paths["curves_png"])}
    paths["report_html"].write_text(report_html(scores, progress, images), encoding="utf-8")
    return paths


def print_summary(results: Results, scores: scoring.Scores, file: TextIO | None = None) -> None:
    """The leaderboard and what to look at, for the terminal (`algoperf score`)."""
    progress = tables.progress_by_workload(tables.trial_frame(results, scores))
    report_terminal.print_summary(scores, progress, file)


# ---- rendering -------------------------------------------------------------------------------


@functools.cache
def _templates() -> jinja2.Environment:
    """The report templates, shipped as package files (algoperf/templates/); HTML autoescaped."""
    environment = jinja2.Environment(
        loader=jinja2.PackageLoader("algoperf", "templates"),
        autoescape=jinja2.select_autoescape(["html", "html.j2"], default_for_string=False),
        undefined=jinja2.StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
        keep_trailing_newline=True,
    )
    environment.filters["md"] = lambda text: str(text).replace("|", "\\|")  # a markdown table cell
    environment.filters["metric"] = tables.format_metric
    # <wbr> lets long workload names break after an underscore instead of widening a table
    environment.filters["wbr"] = lambda text: Markup("_<wbr>").join(escape(str(text)).split("_"))
    return environment


def _context(scores: scoring.Scores, progress: list[tables.WorkloadProgress]) -> dict[str, Any]:
    """What both the markdown and the HTML say."""
    return {
        "label": scores.label,
        "summary": tables.summary_line(scores),
        "unverified": tables.unverified_line(scores),
        "excluded_heading": tables.excluded_heading(scores),
        "excluded": scores.excluded,
        "nothing_reached": tables.nothing_reached_line(scores),
        "tables": tables.leaderboard_tables(scores),
        "cells_note": tables.cells_note(scores),
        "progress": progress,
        "stability": tables.stability_notes(scores),
        "warnings": scores.warnings,
    }


def leaderboard_markdown(scores: scoring.Scores, progress: list[tables.WorkloadProgress]) -> str:
    """The leaderboard as markdown: summary line, what was left out, one table per group,
    progress toward the targets, stability, warnings."""
    return _templates().get_template("leaderboard.md.j2").render(_context(scores, progress))


def _data_uri(png: Path) -> str:
    return "data:image/png;base64," + base64.b64encode(png.read_bytes()).decode("ascii")


def report_html(
    scores: scoring.Scores, progress: list[tables.WorkloadProgress], images: dict[str, str]
) -> str:
    """A self-contained HTML page: leaderboard, progress toward the targets, profiles, curves,
    stability and warnings. `images`: profile_uri and curves_uri, the figures as data URIs."""
    many = any(sum(r.ran for r in w.rows) > tables.MAX_TRIAL_CURVES for w in progress)
    context = {
        **_context(scores, progress),
        **images,
        "measure_label": tables.MEASURE_LABELS[scores.measure],
        "unit": "time" if scores.measure == "time" else "number of steps",
        "tau": f"{scores.tau_max:g}",
        "tau_span": f"{scores.tau_max - 1:g}",
        "overlap_notes": tables.overlap_notes(scores),
        "max_trial_curves": tables.MAX_TRIAL_CURVES if many else None,
        "unstable_count": int((~scores.workloads["stable"]).sum()),
        "result_count": len(scores.workloads),
        "generated": datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC"),
    }
    return _templates().get_template("report.html.j2").render(context)
