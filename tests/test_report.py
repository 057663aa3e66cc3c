"""The report files: all five written, the CSV agrees with scoring, the HTML is self-contained."""

from __future__ import annotations

import base64
import re
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from records import build, make_record, write_trial

from algoperf import report, results, scoring
from algoperf.errors import AlgoperfError

FILES = ("leaderboard_csv", "leaderboard_md", "profile_png", "curves_png", "report_html")


N_BOOT, SEED = 100, 7


@pytest.fixture(scope="module")
def folder(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("results")
    build(
        root,
        {
            ("adamw", "fashion_mnist"): [10.0, 12.0, 11.0],
            ("adamw", "qm9"): [30.0, 35.0, None],
            ("lion", "fashion_mnist"): [9.0, 8.0, 20.0],
            ("lion", "qm9"): [None, None, None],
            ("sgd", "fashion_mnist"): [25.0, 24.0, 26.0],
            ("sgd", "qm9"): [50.0, 60.0, 55.0],
        },
    )
    return root


@pytest.fixture(scope="module")
def written(folder: Path) -> dict[str, Path]:
    """The report written once into the results folder itself (the default out_dir)."""
    return report.write_report(folder, n_boot=N_BOOT, seed=SEED)


def test_write_report_writes_all_five_files(folder: Path, written: dict[str, Path]) -> None:
    assert set(written) == set(FILES)
    for path in written.values():
        assert path.parent == folder and path.is_file() and path.stat().st_size > 0
    for key in ("profile_png", "curves_png"):
        assert written[key].read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    # the report files never look like trials when the folder is scored again
    assert len(results.load(folder).trials) == 18


def test_csv_agrees_with_scoring(folder: Path, written: dict[str, Path]) -> None:
    table = pd.read_csv(written["leaderboard_csv"]).set_index("competitor")
    scores = scoring.score(results.load(folder), n_boot=N_BOOT, seed=SEED)
    expected = scores.leaderboard.set_index("competitor")
    assert list(table.index) == list(expected.index)
    for column in ("rank", "score", "score_ci_low", "score_ci_high", "speedup_vs_reference"):
        np.testing.assert_allclose(table[column], expected[column].astype(float))
    np.testing.assert_allclose(table["qm9/time_to_target_s"], expected["qm9/time_to_target_s"].astype(float))
    assert table["qm9/reached"].tolist() == expected["qm9/reached"].tolist()
    # adamw reaches qm9 in 2 of 3 studies (median 35); lion never; sgd 55
    assert table.loc["lion", "qm9/time_to_target_s"] == np.inf
    assert table.loc["adamw", "qm9/time_to_target_s"] == 35.0


def test_markdown_table(folder: Path, written: dict[str, Path]) -> None:
    text = written["leaderboard_md"].read_text()
    scores = scoring.score(results.load(folder), n_boot=N_BOOT, seed=SEED)
    top = scores.leaderboard.iloc[0]
    assert "| rank | submission | framework | score [95% CI] |" in text
    assert (
        f"| 1 | {top['submission']} | torch | {top['score']:.2f} "
        f"[{top['score_ci_low']:.2f}, {top['score_ci_high']:.2f}] |" in text
    )
    assert re.search(r"\| \d \| lion \|.*\| ✗ \*? *\|", text)  # lion misses qm9
    assert "τ_max = 4" in text and "fingerprint cpu-test-2core" in text
    assert "3 studies per submission and workload, 18 trials" in text
    assert "lion on fashion_mnist: unstable" in text  # 8..20 s: spread 2.5 > 1.5
    assert "adamw on qm9: unstable, 2 of 3 studies reached the target" in text


def test_html_is_self_contained(written: dict[str, Path]) -> None:
    page = written["report_html"].read_text()
    images = re.findall(r'<img [^>]*src="([^"]+)"', page)
    assert len(images) == 2
    for source in images:
        assert source.startswith("data:image/png;base64,")
        assert base64.b64decode(source.split(",", 1)[1])[:4] == b"\x89PNG"
    assert "http://" not in page and "https://" not in page and "//cdn" not in page
    assert not re.search(r"<(script|link)\b", page)
    assert "<table>" in page and "adamw" in page and "performance profile" in page.lower()


def test_steps_measure_and_two_frameworks(tmp_path: Path) -> None:
    for framework, scale in (("torch", 1.0), ("jax", 2.0)):
        for submission, time in (("adamw", 10.0), ("lion", 15.0)):
            write_trial(tmp_path, make_record(submission, "w1", time * scale, framework=framework))
    by_time = report.write_report(tmp_path, tmp_path / "time", n_boot=20)
    text = by_time["leaderboard_md"].read_text()
    assert text.count("(time is compared within one framework only)") == 2
    by_steps = report.write_report(tmp_path, tmp_path / "steps", measure="steps", n_boot=20)
    text = by_steps["leaderboard_md"].read_text()
    assert "within one framework" not in text and "steps ✓" in text
    board = pd.read_csv(by_steps["leaderboard_csv"])
    assert set(board["group"]) == {"all"} and len(board) == 4


def test_empty_folder_names_the_folder(tmp_path: Path) -> None:
    with pytest.raises(AlgoperfError, match=f"no complete trials under {tmp_path}"):
        report.write_report(tmp_path)


def test_names_are_escaped_in_the_html(tmp_path: Path) -> None:
    for submission, time in (("<script>", 10.0), ("lion", 20.0)):
        write_trial(tmp_path, make_record(submission, "w1", time))
    written = report.write_report(tmp_path, tmp_path / "report", n_boot=20)
    page = written["report_html"].read_text()
    assert "<script>" not in page and not re.search(r"<script\b", page)
    assert "<td>&lt;script&gt;</td>" in page  # in the leaderboard and in the progress table
    assert page.count("&lt;script&gt;") >= 2
    # markdown is not HTML: the name stays as it is there
    assert "| 1 | <script> | torch |" in written["leaderboard_md"].read_text()
