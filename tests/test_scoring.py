"""Scoring against hand-computed cases, on real record.json/evals.csv files written to tmp_path."""

from __future__ import annotations

import math
import os
import subprocess
import sys
import textwrap
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
from records import build, make_record, write_trial

from algoperf import results as results_store
from algoperf import scoring
from algoperf.errors import AlgoperfError


def run_score(results: results_store.Results, **kwargs: Any) -> scoring.Scores:
    kwargs.setdefault("n_boot", 200)
    return scoring.score(results, **kwargs)


def board(scores: scoring.Scores) -> pd.DataFrame:
    return scores.leaderboard.set_index("competitor")


def ratio(scores: scoring.Scores, competitor: str, workload: str) -> float:
    rows = scores.workloads
    return float(rows[(rows.competitor == competitor) & (rows.workload == workload)].ratio.iloc[0])


# ---- the formulas on arrays ------------------------------------------------------------------


def test_median_over_studies_with_infinite_studies() -> None:
    inf = math.inf
    assert scoring.median_over_studies([1.0, inf, inf]) == inf
    assert scoring.median_over_studies([1.0, 2.0, inf]) == 2.0
    assert scoring.median_over_studies([1.0, inf]) == inf  # even count: half missed => missed
    assert scoring.median_over_studies([3.0, 1.0]) == 2.0
    assert scoring.median_over_studies([]) == inf


def test_ratios_guard_nobody_reached_and_zero_best() -> None:
    inf = math.inf
    times = np.array([[inf, 0.0, 2.0], [inf, 1.0, 2.0]])
    ratios = scoring.performance_ratios(times, 4.0)
    assert not np.isnan(ratios).any()
    np.testing.assert_array_equal(ratios, [[inf, 1.0, 1.0], [inf, inf, 1.0]])


def test_exact_area_against_hand_number() -> None:
    # ratios 1, 2.5, inf with tau_max 4: rho = 1/3 on [1, 2.5), 2/3 on [2.5, 4].
    # integral = 1.5 * 1/3 + 1.5 * 2/3 = 1.5; B = 1.5 / 3 = 0.5.
    ratios = np.array([1.0, 2.5, math.inf])
    assert scoring.benchmark_scores(ratios, 4.0) == pytest.approx(0.5, abs=1e-12)
    taus = np.linspace(1, 4, 300_001)
    rho = scoring.performance_profile(ratios, taus)
    riemann = float(np.sum(rho[:-1] * np.diff(taus))) / 3
    assert riemann == pytest.approx(0.5, abs=1e-5)
    np.testing.assert_allclose(
        scoring.performance_profile(ratios, [1.0, 2.4, 2.5, 4.0]), [1 / 3, 1 / 3, 2 / 3, 2 / 3]
    )


def test_geometric_mean_speedup() -> None:
    # reference 2x slower on one, 8x slower on another => geomean sqrt(2*8) = 4; the third
    # workload is missed by the reference, so it does not count.
    times = np.array([1.0, 1.0, 5.0])
    reference = np.array([2.0, 8.0, math.inf])
    assert scoring.geometric_mean_speedup(times, reference) == pytest.approx(4.0)
    assert math.isnan(scoring.geometric_mean_speedup(np.array([math.inf]), np.array([1.0])))


def test_study_spread_threshold() -> None:
    assert scoring.study_spread([10.0, 15.0, 12.0]) == (True, 1.5)
    stable, spread = scoring.study_spread([10.0, 15.1])
    assert not stable and spread == pytest.approx(1.51)
    assert scoring.study_spread([10.0, math.inf]) == (False, math.inf)
    stable, spread = scoring.study_spread([math.inf, math.inf])
    assert stable and math.isnan(spread)


# ---- the pipeline on record files ------------------------------------------------------------


def test_ties_both_ratio_one(tmp_path: Path) -> None:
    results = build(tmp_path, {("adamw", "w1"): [10.0], ("lion", "w1"): [10.0]})
    scores = run_score(results)
    assert ratio(scores, "adamw", "w1") == 1.0 and ratio(scores, "lion", "w1") == 1.0
    assert board(scores).loc[["adamw", "lion"], "score"].tolist() == [1.0, 1.0]
    assert board(scores).loc[["adamw", "lion"], "rank"].tolist() == [1, 1]


def test_submission_missing_everything_scores_zero(tmp_path: Path) -> None:
    results = build(
        tmp_path,
        {
            ("adamw", "w1"): [10.0],
            ("adamw", "w2"): [20.0],
            ("broken", "w1"): [None],
            ("broken", "w2"): [None],
        },
    )
    scores = run_score(results)
    assert board(scores).loc["broken", "score"] == 0.0
    assert board(scores).loc["broken", "workloads_reached"] == 0
    assert board(scores).loc["adamw", "score"] == 1.0


def test_workload_nobody_reaches(tmp_path: Path) -> None:
    # w2 is missed by everyone: all its ratios are inf, nothing is NaN, and the scores are still
    # averaged over both workloads (adamw: (1 + 0)/2; lion: ratio 2 on w1 => (4-2)/3 / 2).
    results = build(
        tmp_path,
        {
            ("adamw", "w1"): [10.0],
            ("adamw", "w2"): [None],
            ("lion", "w1"): [20.0],
            ("lion", "w2"): [None],
        },
    )
    scores = run_score(results)
    assert ratio(scores, "adamw", "w2") == math.inf and ratio(scores, "lion", "w2") == math.inf
    assert board(scores).loc["adamw", "score"] == pytest.approx(0.5)
    assert board(scores).loc["lion", "score"] == pytest.approx(1 / 3)
    numeric = scores.leaderboard.select_dtypes("number")
    assert not numeric.drop(columns=[c for c in numeric if "steps" in c or "time" in c]).isna().any().any()
    assert not scores.workloads[["ratio", "value", "best_value"]].isna().any().any()
    assert not scores.profiles["fraction"].isna().any()


def test_ratios_just_below_and_above_tau_max(tmp_path: Path) -> None:
    results = build(tmp_path, {("adamw", "w1"): [1.0], ("below", "w1"): [3.999], ("above", "w1"): [4.001]})
    scores = run_score(results, tau_max=4.0)
    assert ratio(scores, "below", "w1") == pytest.approx(3.999)
    assert ratio(scores, "above", "w1") == math.inf
    assert board(scores).loc["below", "score"] == pytest.approx(0.001 / 3)
    assert board(scores).loc["above", "score"] == 0.0
    assert bool(board(scores).loc["above", "w1/reached"])  # reached, just too slow to count


def test_median_over_studies_in_pipeline(tmp_path: Path) -> None:
    # adamw studies: [best of (12, 10), 30, missed] -> study times [10, 30, inf] -> median 30.
    # lion studies: [15, missed, missed] -> median inf.
    results = build(
        tmp_path,
        {
            ("adamw", "w1"): [[12.0, 10.0], [30.0, None], [None, None]],
            ("lion", "w1"): [[15.0, None], [None, None], [None, None]],
        },
    )
    scores = run_score(results)
    rows = scores.workloads.set_index("competitor")
    assert rows.loc["adamw", "value"] == 30.0
    assert rows.loc["adamw", "studies_reached"] == 2 and rows.loc["adamw", "num_trials"] == 6
    assert rows.loc["lion", "value"] == math.inf
    assert not rows.loc["adamw", "stable"] and not rows.loc["lion", "stable"]
    studies = scores.studies.set_index(["competitor", "study"])
    assert studies.loc[("adamw", 0), "value"] == 10.0 and studies.loc[("adamw", 0), "best_trial"] == 1


def test_one_submission_reaching_everything_scores_one(tmp_path: Path) -> None:
    results = build(tmp_path, {("adamw", "w1"): [5.0, 6.0, 7.0], ("adamw", "w2"): [50.0, 40.0, 45.0]})
    scores = run_score(results)
    row = scores.leaderboard.iloc[0]
    assert row["competitor"] == "adamw" and row["score"] == 1.0
    assert row["score_ci_low"] == 1.0 and row["score_ci_high"] == 1.0
    assert row["speedup_vs_reference"] == 1.0
    assert row["w1/time_to_target_s"] == 6.0 and row["w2/time_to_target_s"] == 45.0
    assert row["w1/steps_to_target"] == 60.0


def test_hand_computed_leaderboard(tmp_path: Path) -> None:
    # w1: adamw 10, lion 20 (r=2), sgd 25 (r=2.5); w2: adamw 30 (r=1.5), lion 20, sgd missed.
    results = build(
        tmp_path,
        {
            ("adamw", "w1"): [10.0],
            ("adamw", "w2"): [30.0],
            ("lion", "w1"): [20.0],
            ("lion", "w2"): [20.0],
            ("sgd", "w1"): [25.0],
            ("sgd", "w2"): [None],
        },
    )
    scores = run_score(results)
    expected = {
        "adamw": ((4 - 1) + (4 - 1.5)) / 3 / 2,
        "lion": ((4 - 2) + (4 - 1)) / 3 / 2,
        "sgd": (4 - 2.5) / 3 / 2,
    }
    for name, value in expected.items():
        assert board(scores).loc[name, "score"] == pytest.approx(value)
    assert scores.leaderboard["competitor"].tolist() == ["adamw", "lion", "sgd"]
    assert scores.leaderboard["rank"].tolist() == [1, 2, 3]
    # lion vs adamw: w1 10/20, w2 30/20 -> sqrt(0.5 * 1.5)
    assert board(scores).loc["lion", "speedup_vs_reference"] == pytest.approx(math.sqrt(0.75))
    # profile of lion: 1/2 on [1, 2), 1 from 2 on
    lion = scores.profiles[scores.profiles.competitor == "lion"].set_index("tau")["fraction"]
    assert lion.loc[1.0] == 0.5 and lion.loc[2.0] == 1.0 and lion.loc[4.0] == 1.0


def test_steps_measure(tmp_path: Path) -> None:
    # time favours adamw, steps favour lion.
    for submission, time, steps in (("adamw", 10.0, 400), ("lion", 20.0, 100)):
        write_trial(tmp_path, make_record(submission, "w1", time, steps_to_target=steps))
    results = results_store.load(tmp_path)
    by_time = run_score(results, measure="time")
    by_steps = run_score(results, measure="steps")
    assert board(by_time).loc["lion", "score"] == pytest.approx((4 - 2) / 3)
    assert board(by_steps).loc["lion", "score"] == 1.0
    assert board(by_steps).loc["adamw", "score"] == 0.0  # 4x the steps: r = 4, area 0
    assert ratio(by_steps, "adamw", "w1") == 4.0


def test_frameworks_separate_for_time_together_for_steps(tmp_path: Path) -> None:
    records = [
        ("adamw", "torch", 10.0, 100),
        ("lion", "torch", 20.0, 200),
        ("adamw", "jax", 30.0, 100),
        ("lion", "jax", 15.0, 50),
    ]
    for submission, framework, time, steps in records:
        write_trial(
            tmp_path,
            make_record(submission, "w1", time, steps_to_target=steps, framework=framework),
        )
    results = results_store.load(tmp_path)
    by_time = run_score(results, measure="time")
    lb = board(by_time)
    assert set(lb.index) == {"adamw [torch]", "lion [torch]", "adamw [jax]", "lion [jax]"}
    assert set(by_time.leaderboard["group"]) == {"torch", "jax"}
    # jax adamw (30 s) is compared with jax lion (15 s) only, never with torch adamw (10 s).
    assert lb.loc["adamw [torch]", "score"] == 1.0 and lb.loc["lion [jax]", "score"] == 1.0
    assert lb.loc["adamw [jax]", "score"] == pytest.approx((4 - 2) / 3)
    assert lb.loc["lion [torch]", "score"] == pytest.approx((4 - 2) / 3)
    # speedup against adamw in the competitor's own framework
    assert lb.loc["lion [jax]", "speedup_vs_reference"] == pytest.approx(2.0)
    assert lb.loc["lion [torch]", "speedup_vs_reference"] == pytest.approx(0.5)
    assert by_time.leaderboard.groupby("group")["rank"].apply(list).to_dict() == {
        "jax": [1, 2],
        "torch": [1, 2],
    }

    by_steps = run_score(results, measure="steps")
    lb = board(by_steps)
    assert set(by_steps.leaderboard["group"]) == {"all"}
    assert lb.loc["lion [jax]", "score"] == 1.0
    assert lb.loc["adamw [torch]", "score"] == pytest.approx((4 - 2) / 3)
    assert lb.loc["lion [torch]", "score"] == 0.0  # 200 / 50 = 4 steps ratio: area 0


def test_mixed_fingerprints_refused(tmp_path: Path) -> None:
    write_trial(tmp_path, make_record("adamw", "w1", 10.0, fingerprint="h100-x1"))
    write_trial(tmp_path, make_record("lion", "w1", 10.0, fingerprint="cpu-2core"))
    with pytest.raises(AlgoperfError) as excinfo:
        scoring.score(results_store.load(tmp_path))
    message = str(excinfo.value)
    assert "h100-x1" in message and "cpu-2core" in message
    assert "hardware fingerprint differs" in message
    assert "--split-settings" in message


def test_mixed_rulesets_refused(tmp_path: Path) -> None:
    write_trial(tmp_path, make_record("adamw", "w1", 10.0, ruleset="external"))
    write_trial(tmp_path, make_record("lion", "w1", 10.0, ruleset="self"))
    with pytest.raises(AlgoperfError, match="ruleset differs: external .*; self "):
        scoring.score(results_store.load(tmp_path))


def test_empty_folder_refused(tmp_path: Path) -> None:
    with pytest.raises(AlgoperfError, match="no complete trials"):
        scoring.score(results_store.load(tmp_path))


def test_bad_measure_refused(tmp_path: Path) -> None:
    results = build(tmp_path, {("adamw", "w1"): [1.0]})
    with pytest.raises(AlgoperfError, match="Did you mean 'steps'"):
        scoring.score(results, measure="step")


def test_invalid_records_refused_or_left_out_and_listed(tmp_path: Path) -> None:
    build(tmp_path, {("adamw", "w1"): [1.0]})
    damaged = results_store.trial_dir(tmp_path, results_store.TrialKey("sweep", "lion", "w1", "torch", 0, 0))
    damaged.mkdir(parents=True)
    (damaged / "record.json").write_text("{not json")
    results = results_store.load(tmp_path)
    with pytest.raises(AlgoperfError, match=r"1 trial record is not valid(.|\n)*lion(.|\n)*--skip-invalid"):
        scoring.score(results, n_boot=10)
    scores = scoring.score(results, n_boot=10, skip_invalid=True)
    assert any("lion" in line and "damaged" in line for line in scores.excluded)
    assert list(scores.leaderboard["competitor"]) == ["adamw"]


def test_missing_pair_counts_as_not_reached(tmp_path: Path) -> None:
    results = build(tmp_path, {("adamw", "w1"): [1.0], ("adamw", "w2"): [1.0], ("lion", "w1"): [1.0]})
    with pytest.warns(UserWarning, match="lion has no trials on w2"):
        scores = scoring.score(results, n_boot=10)
    assert board(scores).loc["lion", "score"] == 0.5


def test_bootstrap_ci(tmp_path: Path) -> None:
    results = build(
        tmp_path,
        {
            ("adamw", "w1"): [10.0, 11.0, 9.0, 10.5, 9.5],
            ("adamw", "w2"): [20.0, 26.0, 22.0, 30.0, 19.0],
            ("lion", "w1"): [15.0, 12.0, 14.0, 20.0, 13.0],
            ("lion", "w2"): [18.0, 21.0, 17.0, 25.0, 20.0],
            ("same", "w1"): [12.0] * 5,
            ("same", "w2"): [22.0] * 5,
        },
    )
    scores = run_score(results, n_boot=500, seed=3)
    for row in scores.leaderboard.itertuples():
        assert row.score_ci_low <= row.score <= row.score_ci_high
        assert 0.0 <= row.score_ci_low and row.score_ci_high <= 1.0
    assert (board(scores)["score_ci_high"] > board(scores)["score_ci_low"]).any()
    again = run_score(results, n_boot=500, seed=3)
    pd.testing.assert_frame_equal(scores.leaderboard, again.leaderboard)

    # every study identical => every resample is the point estimate
    scoring_dir = tmp_path / "identical"
    same = build(
        scoring_dir,
        {("adamw", "w1"): [10.0] * 4, ("lion", "w1"): [25.0] * 4, ("lion", "w2"): [3.0] * 4},
    )
    with pytest.warns(UserWarning, match="adamw has no trials on w2"):
        degenerate = scoring.score(same, n_boot=300)
    for row in degenerate.leaderboard.itertuples():
        assert row.score_ci_low == row.score == row.score_ci_high


def test_bootstrap_is_vectorised_and_fast() -> None:
    rng = np.random.default_rng(0)
    values = [[rng.exponential(10, size=5) for _ in range(10)] for _ in range(30)]
    boots = scoring.bootstrap_scores(values, 4.0, 1000, np.random.default_rng(0))
    assert boots.shape == (1000, 30)
    assert ((boots >= 0) & (boots <= 1)).all()


def test_scoring_works_without_torch_or_jax(tmp_path: Path) -> None:
    build(tmp_path, {("adamw", "w1"): [1.0], ("lion", "w1"): [2.0]})
    script = textwrap.dedent(
        f"""
        import sys
        sys.modules["torch"] = None
        sys.modules["jax"] = None
        from algoperf import report, results, scoring
        scores = scoring.score(results.load({str(tmp_path)!r}), n_boot=10)
        assert list(scores.leaderboard["competitor"]) == ["adamw", "lion"]
        paths = report.write_report({str(tmp_path)!r}, {str(tmp_path / "out")!r})
        assert all(p.is_file() for p in paths.values())
        assert "torch" not in sys.modules or sys.modules["torch"] is None
        print("ok")
        """
    )
    repo = Path(__file__).resolve().parent.parent
    env = {
        **os.environ,
        "PYTHONPATH": os.pathsep.join([str(repo), os.environ.get("PYTHONPATH", "")]),
    }
    done = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, cwd=tmp_path, env=env
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip().endswith("ok")
