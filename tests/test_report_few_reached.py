"""The report when few or no trials reach a target: per workload, each competitor's best
validation metric against the target, its trials at target, how its trials ended and which
were step-capped; a sentence naming the closest competitor when nobody reached; curves that
show every eval; profile lines that coincide drawn apart and named."""

from __future__ import annotations

import io
import re
from html.parser import HTMLParser
from pathlib import Path

import pytest
from records import make_record, write_trial

from algoperf import report, report_plots, report_tables, results, scoring
from algoperf.cli import main

N_BOOT = 20
NONE_ON_W1 = (
    "No competitor reached the target on w1 (validation accuracy ≥ 0.9, higher is better). "
    "Closest: adamw, best validation accuracy 0.85 over 3 trials, 0.05 short of the target."
)
ONE_ON_W2 = "Only 1 of 6 trials reached the target on w2 (adamw)."


def few_reached(root: Path) -> Path:
    """w1 (accuracy ≥ 0.9): no trial reaches; lion's trials end three different ways; sgd ran
    two step-capped smoke trials. w2 (mae ≤ 0.2, lower is better): one trial of adamw reaches."""
    for trial, best in enumerate([0.80, 0.85, 0.70]):
        write_trial(root, make_record("adamw", "w1", None, trial=trial, best_validation=best))
    for trial, (best, status) in enumerate([(0.6, "budget_exhausted"), (0.5, "diverged"), (0.4, "failed")]):
        record = make_record("lion", "w1", None, trial=trial, best_validation=best)
        write_trial(root, record | {"status": status})
    for trial in range(2):
        record = make_record("sgd", "w1", None, trial=trial, best_validation=0.3 + trial / 10)
        write_trial(root, record | {"max_steps": 5})
    mae = {"target": 0.2, "higher_is_better": False}
    for trial, time in enumerate([10.0, None, None]):
        best = 0.19 if time else 0.3
        write_trial(root, make_record("adamw", "w2", time, trial=trial, best_validation=best, **mae))
    for trial in range(3):
        write_trial(
            root, make_record("lion", "w2", None, trial=trial, best_validation=0.25 + trial / 100, **mae)
        )
    return root


class Tables(HTMLParser):
    """Every <table id=...> of a page as rows of cell texts (header row included)."""

    def __init__(self) -> None:
        super().__init__()
        self.tables: dict[str, list[list[str]]] = {}
        self._table: list[list[str]] | None = None
        self._cell: list[str] | None = None

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag == "table" and dict(attrs).get("id"):
            self._table = self.tables.setdefault(str(dict(attrs)["id"]), [])
        elif tag == "tr" and self._table is not None:
            self._table.append([])
        elif tag in ("td", "th") and self._table is not None:
            self._cell = []

    def handle_endtag(self, tag: str) -> None:
        if tag in ("td", "th") and self._table is not None and self._cell is not None:
            self._table[-1].append("".join(self._cell).strip())
            self._cell = None
        elif tag == "table":
            self._table = None

    def handle_data(self, data: str) -> None:
        if self._cell is not None:
            self._cell.append(data)


def progress_tables(page: str) -> dict[str, dict[str, list[str]]]:
    """workload -> competitor -> its row of the progress table, plus "header"."""
    parser = Tables()
    parser.feed(page)
    found = {}
    for name, rows in parser.tables.items():
        if name.startswith("progress-"):
            found[name.removeprefix("progress-")] = {"header": rows[0], **{row[0]: row for row in rows[1:]}}
    return found


@pytest.fixture(scope="module")
def written(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    root = few_reached(tmp_path_factory.mktemp("few") / "results")
    return report.write_report(root, root.parent / "report", n_boot=N_BOOT)


def test_best_value_table_when_no_trial_reaches(written: dict[str, Path]) -> None:
    w1 = progress_tables(written["report_html"].read_text())["w1"]
    assert w1["header"] == [
        "submission",
        "best validation accuracy",
        "target",
        "gap to target",
        "trials at target",
        "statuses",
        "step cap",
    ]
    # closest first: adamw's best of 0.80, 0.85, 0.70
    assert w1["adamw"] == ["adamw", "0.85", "0.9", "0.05 short", "0 of 3", "budget_exhausted×3", ""]
    assert w1["lion"] == [
        "lion",
        "0.6",
        "0.9",
        "0.3 short",
        "0 of 3",
        "budget_exhausted×1, diverged×1, failed×1",
        "",
    ]
    # the smoke runs are shown, marked, and said to be left out of the score
    assert w1["sgd"] == [
        "sgd",
        "0.4",
        "0.9",
        "0.5 short",
        "0 of 2",
        "budget_exhausted×2",
        "2 step-capped (max_steps=5), not scored",
    ]
    assert list(w1) == ["header", "adamw", "lion", "sgd"]


def test_best_value_table_when_one_trial_reaches(written: dict[str, Path]) -> None:
    w2 = progress_tables(written["report_html"].read_text())["w2"]
    assert w2["header"][1] == "best validation mae"
    assert w2["adamw"] == [
        "adamw",
        "0.19",
        "0.2",
        "met (by 0.01)",
        "1 of 3",
        "budget_exhausted×2, reached×1",
        "",
    ]
    assert w2["lion"] == ["lion", "0.25", "0.2", "0.05 short", "0 of 3", "budget_exhausted×3", ""]
    assert "target validation mae ≤ 0.2 (lower is better)" in written["report_html"].read_text()


def test_sentences_name_the_closest_competitor(written: dict[str, Path]) -> None:
    page = written["report_html"].read_text()
    assert NONE_ON_W1 in page and ONE_ON_W2 in page
    assert "No competitor reached the target on w2" not in page
    # adamw reached w2, so not every score is 0
    assert "so every score is 0.00" not in page


def test_markdown_has_the_short_version(written: dict[str, Path]) -> None:
    text = written["leaderboard_md"].read_text()
    assert "## Progress toward the targets" in text
    assert "### w1 · target validation accuracy ≥ 0.9 (higher is better)" in text
    assert NONE_ON_W1 in text and ONE_ON_W2 in text
    assert "| adamw | 0.85 | 0.05 short | 0 of 3 | budget_exhausted×3 |  |" in text
    assert "| lion | 0.6 | 0.3 short | 0 of 3 | budget_exhausted×1, diverged×1, failed×1 |  |" in text
    assert (
        "| sgd | 0.4 | 0.5 short | 0 of 2 | budget_exhausted×2 | 2 step-capped (max_steps=5), not scored |"
        in text
    )
    assert "| adamw | 0.19 | met (by 0.01) | 1 of 3 | budget_exhausted×2, reached×1 |  |" in text


def test_curves_show_every_eval_of_every_trial(written: dict[str, Path]) -> None:
    root = written["report_html"].parent.parent / "results"
    loaded = results.load(root)
    scores = scoring.score(loaded, n_boot=N_BOOT)
    trials = report_tables.trial_frame(loaded, scores)
    evals = report_tables.curve_evals(loaded, trials)
    w1 = evals[evals["workload"] == "w1"]
    assert len(w1) == 8 * 4  # 8 trials (the 2 smoke runs too), 4 evals each
    assert w1.groupby("competitor")["path"].nunique().to_dict() == {"adamw": 3, "lion": 3, "sgd": 2}
    # one best trial per competitor: adamw's best on w1 is its 0.85 trial (trial 1)
    best = w1[w1["best"]].groupby("competitor")["trial"].unique()
    assert {name: list(t) for name, t in best.items()} == {"adamw": [1], "lion": [0], "sgd": [1]}
    progress = report_tables.progress_by_workload(trials)
    competitors = report_tables.competitor_order(trials, scores)
    assert list(competitors["competitor"]) == ["adamw", "lion", "sgd"]
    styles = report_plots.competitor_styles(competitors)
    figure = report_plots.plot_curves(evals, progress, competitors, styles, "time")
    panel = figure.axes[0]
    lines = [line for line in panel.get_lines() if len(line.get_xdata()) > 0 and line.get_marker() != "None"]
    assert len(lines) == 8 and all(len(line.get_xdata()) == 4 for line in lines)
    assert sorted({line.get_marker() for line in lines}) == sorted({"o", "s", "^"})
    # the target, as a horizontal line
    assert any(list(line.get_ydata()) == [0.9, 0.9] for line in panel.get_lines())


def test_a_curve_with_one_eval_is_a_visible_marker(tmp_path: Path) -> None:
    for submission in ("adamw", "lion"):
        write_trial(tmp_path, make_record(submission, "w1", None, best_validation=0.5))
    loaded = results.load(tmp_path)
    scores = scoring.score(loaded, n_boot=N_BOOT)
    trials = report_tables.trial_frame(loaded, scores)
    evals = report_tables.curve_evals(loaded, trials)
    evals = evals[evals["step"] == evals["step"].max()]  # one eval per trial
    competitors = report_tables.competitor_order(trials, scores)
    progress = report_tables.progress_by_workload(trials)
    styles = report_plots.competitor_styles(competitors)
    panel = report_plots.plot_curves(evals, progress, competitors, styles, "time").axes[0]
    dots = [line for line in panel.get_lines() if len(line.get_xdata()) == 1]
    assert len(dots) == 2 and all(d.get_marker() != "None" and d.get_markersize() >= 5 for d in dots)


@pytest.fixture(scope="module")
def nobody(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("nobody") / "results"
    for submission, best in (("adamw", 0.5), ("lion", 0.6), ("sgd", 0.7)):
        for trial in range(2):
            write_trial(
                root, make_record(submission, "w1", None, trial=trial, best_validation=best - trial / 10)
            )
    return root


def test_when_nobody_reaches_anything(nobody: Path) -> None:
    written = report.write_report(nobody, nobody.parent / "report", n_boot=N_BOOT)
    page = written["report_html"].read_text()
    assert "No competitor reached the target on any workload, so every score is 0.00." in page
    assert (
        "No competitor reached the target on w1 (validation accuracy ≥ 0.9, higher is better). "
        "Closest: sgd, best validation accuracy 0.7 over 2 trials, 0.2 short of the target."
    ) in page
    assert "every score is 0.00" in written["leaderboard_md"].read_text()
    # three flat profiles at 0 would hide each other: named, and drawn apart
    assert "Lines overlap (identical profiles): adamw, lion, sgd" in page
    scores = scoring.score(results.load(nobody), n_boot=N_BOOT)
    styles = report_plots.competitor_styles(scores.leaderboard)
    axes = report_plots.plot_profiles(scores, styles).axes[0]
    heights = {float(line.get_ydata()[0]) for line in axes.get_lines()}
    assert len(heights) == 3 and max(heights) - min(heights) < 0.05


def test_included_smoke_runs_are_marked_but_scored(tmp_path: Path) -> None:
    for submission, time in (("adamw", 10.0), ("lion", None)):
        write_trial(tmp_path, make_record(submission, "w1", time) | {"max_steps": 500})
    written = report.write_report(tmp_path, tmp_path / "report", n_boot=N_BOOT, include_smoke=True)
    w1 = progress_tables(written["report_html"].read_text())["w1"]
    assert w1["adamw"][4:] == ["1 of 1", "reached×1", "1 step-capped (max_steps=500)"]
    assert w1["lion"][4:] == ["0 of 1", "budget_exhausted×1", "1 step-capped (max_steps=500)"]


def test_score_prints_a_plain_rich_table(
    written: dict[str, Path], capsys: pytest.CaptureFixture[str]
) -> None:
    root = written["report_html"].parent.parent / "results"
    capsys.readouterr()
    assert main(["score", str(root), "--out", str(root.parent / "printed")]) == 0
    out = capsys.readouterr().out
    assert "\x1b[" not in out  # not a terminal: no colours or cursor codes
    assert re.search(r"^\| rank \| submission \| framework \| +score \[95% CI\] \|", out, re.M)
    assert re.search(
        r"^\| +1 \| adamw +\| torch +\| 0\.50 \[0\.50, 0\.50\] \|.*\| ✗ +\| 10\.0 s · 100 steps ✓", out, re.M
    )
    assert re.search(r"^\| +2 \| lion +\| torch +\| 0\.00 \[0\.00, 0\.00\] \|", out, re.M)
    assert f"- {NONE_ON_W1}" in out and f"- {ONE_ON_W2}" in out
    assert "2 smoke runs (trials capped by max_steps=5" in out
    assert str(root.parent / "printed" / "report.html") in out


def test_summary_on_a_terminal_uses_rich(written: dict[str, Path]) -> None:
    class Terminal(io.StringIO):
        def isatty(self) -> bool:
            return True

    root = written["report_html"].parent.parent / "results"
    loaded = results.load(root)
    screen = Terminal()
    report.print_summary(loaded, scoring.score(loaded, n_boot=N_BOOT), screen)
    assert "\x1b[" in screen.getvalue() and "adamw" in screen.getvalue()
