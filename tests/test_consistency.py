"""The store and the scorer accept only consistent results: every damage to a known-answer
folder is refused (exit 2, the record named) or left out and listed, never scored silently.

Damaged records are re-signed (results.write_record) so the signature check passes: these are
the records a buggy harness, another version, or --trust-unsigned would hand to the scorer.
"""

from __future__ import annotations

import hashlib
import json
import math
import shutil
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from records import make_record, write_trial

from algoperf import results, scoring, signing
from algoperf.cli import main
from algoperf.errors import AlgoperfError

# (submission, workload) -> one time per study (None: missed). Known answer: see KNOWN_SCORES.
TABLE = {
    ("adamw", "w1"): [10.0, 12.0, 11.0],
    ("adamw", "w2"): [30.0, 35.0, None],
    ("lion", "w1"): [20.0, None, 25.0],
    ("lion", "w2"): [15.0, 16.0, 14.0],
    ("sgd", "w1"): [None, None, None],
    ("sgd", "w2"): [40.0, 45.0, 50.0],
}


def build_folder(root: Path) -> Path:
    for (submission, workload), studies in TABLE.items():
        for study, time in enumerate(studies):
            write_trial(root, make_record(submission, workload, time, study=study))
    return root


@pytest.fixture(scope="module")
def pristine(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return build_folder(tmp_path_factory.mktemp("pristine"))


@pytest.fixture
def folder(pristine: Path, tmp_path: Path) -> Path:
    shutil.copytree(pristine, tmp_path / "results")
    return tmp_path / "results"


def scores_of(root: Path, **kwargs: Any) -> dict[str, float]:
    scored = scoring.score(results.load(root), n_boot=10, **kwargs)
    return dict(zip(scored.leaderboard["competitor"], scored.leaderboard["score"], strict=True))


def test_known_answer(pristine: Path) -> None:
    # medians: adamw w1 11, w2 35; lion w1 25, w2 15; sgd w1 inf, w2 45. Ratios (tau_max 4):
    # adamw 1, 35/15; lion 25/11, 1; sgd inf, 3. B = mean(max(0, 4 - r)) / 3.
    expected = {
        "adamw": (3 + (4 - 35 / 15)) / 2 / 3,
        "lion": ((4 - 25 / 11) + 3) / 2 / 3,
        "sgd": (0 + 1) / 2 / 3,
    }
    assert scores_of(pristine) == pytest.approx(expected)


def trial(root: Path, submission: str, workload: str, study: int, sweep: str = "sweep") -> Path:
    return results.trial_dir(root, results.TrialKey(sweep, submission, workload, "torch", study, 0))


def rewrite(directory: Path, **changes: Any) -> Path:
    """Change fields of a stored record and sign it again, as write_record would, but without
    write_record's own checks (a harness bug, or another version, could skip them)."""
    path = directory / results.RECORD_NAME
    record = json.loads(path.read_text())
    record.pop("signature")
    for name, value in changes.items():
        if value is DELETE:
            del record[name]
        else:
            record[name] = value
    evals = directory / results.EVALS_NAME
    record["evals_sha256"] = hashlib.sha256(evals.read_bytes()).hexdigest() if evals.exists() else None
    path.write_text(json.dumps(signing.json_safe(signing.sign(record, signing.load_key()))))
    return path


DELETE = object()


def refused(root: Path, capsys: pytest.CaptureFixture[str], *args: str) -> str:
    """Score through the command line; it must exit 2 with a one-message error (no traceback)."""
    capsys.readouterr()
    assert main(["score", str(root), "--out", str(root.parent / "report"), *args]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and "Traceback" not in err
    assert not (root.parent / "report").exists()
    return err


def left_out(root: Path, capsys: pytest.CaptureFixture[str], record: Path) -> dict[str, float]:
    """--skip-invalid: scored without the record, which is named in all three outputs."""
    capsys.readouterr()
    out = root.parent / "report"
    assert main(["score", str(root), "--out", str(out), "--skip-invalid"]) == 0
    captured = capsys.readouterr()
    assert str(record) in captured.err
    assert str(record) in (out / "leaderboard.md").read_text()
    assert str(record) in (out / "report.html").read_text()
    return scores_of(root, skip_invalid=True)


# ---- one test per damage class ----------------------------------------------------------------


@pytest.mark.parametrize("status", ["diverged", "failed", "budget_exhausted", "training_complete"])
def test_a_time_on_a_status_other_than_reached(folder, capsys, status) -> None:
    record = rewrite(trial(folder, "sgd", "w1", 0), status=status, time_to_target_s=1.0)
    err = refused(folder, capsys)
    assert f"{record}: status {status!r} carries a time" in err and "--skip-invalid" in err
    assert "sgd" in left_out(folder, capsys, record)


def test_reached_after_its_own_budget(folder, capsys) -> None:
    record = rewrite(trial(folder, "adamw", "w1", 0), time_to_target_s=150.0, submission_time_s=150.0)
    assert f"{record}: reached at 150 s, after its own budget of 100 s" in refused(folder, capsys)


def test_reached_with_a_best_validation_short_of_the_target(folder, capsys) -> None:
    record = rewrite(trial(folder, "adamw", "w1", 0), best_validation=0.5)
    assert f"{record}: status 'reached' but best_validation 0.5 does not meet the target 0.9" in refused(
        folder, capsys
    )


def test_reached_at_a_time_its_eval_log_contradicts(folder, capsys) -> None:
    record = rewrite(trial(folder, "lion", "w1", 0), time_to_target_s=2.0)
    assert f"{record}: reached at 2 s (step 200) but evals.csv first meets the target at 20 s" in refused(
        folder, capsys
    )


@pytest.mark.parametrize("field", ["time_to_target_s", "submission_time_s", "eval_time_s", "wall_time_s"])
def test_negative_times(folder, capsys, field) -> None:
    record = rewrite(trial(folder, "adamw", "w1", 1), **{field: -5.0})
    assert f"{record}: {field}: input should be greater than or equal to 0 (got -5.0)" in refused(
        folder, capsys
    )


def test_negative_steps(folder, capsys) -> None:
    record = rewrite(trial(folder, "adamw", "w1", 1), global_steps=-1)
    assert f"{record}: global_steps: input should be greater than or equal to 0" in refused(folder, capsys)


def test_the_same_trial_twice_in_a_backup_folder(folder, capsys) -> None:
    original = trial(folder, "lion", "w2", 1)
    backup = folder / "backup" / original.relative_to(folder)
    shutil.copytree(original, backup)
    err = refused(folder, capsys)
    assert f"{original / 'record.json'}: the same trial is also recorded at {backup}" in err
    assert f"{backup / 'record.json'}: the same trial is also recorded at {original}" in err


def test_a_record_moved_under_another_submission(folder, capsys) -> None:
    moved = trial(folder, "lion", "w1", 1)
    shutil.move(trial(folder, "adamw", "w1", 1), moved.parent / "trial_5")
    err = refused(folder, capsys)
    says = "the record says submission 'adamw' but filed under 'lion'"
    assert f"{moved.parent / 'trial_5' / 'record.json'}: {says}" in err


def test_a_record_at_the_root(folder, capsys) -> None:
    for name in (results.RECORD_NAME, results.EVALS_NAME):
        shutil.copy(trial(folder, "adamw", "w1", 0) / name, folder / name)
    err = refused(folder, capsys)
    assert f"{folder / 'record.json'}: " in err and "not in a trial folder" in err


def test_a_record_of_another_sweep_inside_this_sweeps_tree(folder, capsys) -> None:
    stray = trial(folder, "adamw", "w1", 0, sweep="other")
    write_trial(folder, make_record("adamw", "w1", 5.0, sweep="other"))
    shutil.move(stray, trial(folder, "adamw", "w1", 7))
    err = refused(folder, capsys)
    assert "the record says sweep 'other' but filed under 'sweep'; study 0 but filed under 'study_7'" in err


def test_a_parent_folder_of_two_sweeps_is_scored_per_sweep(tmp_path, capsys) -> None:
    build_folder(tmp_path / "results")
    for (submission, workload), studies in TABLE.items():
        for study, time in enumerate(studies):
            faster = None if time is None else time / 2
            write_trial(
                tmp_path / "results", make_record(submission, workload, faster, study=study, sweep="again")
            )
    out = tmp_path / "report"
    assert main(["score", str(tmp_path / "results"), "--out", str(out)]) == 0
    assert "scoring 2 parts apart: again, sweep" in capsys.readouterr().out
    for sweep in ("again", "sweep"):
        assert (out / sweep / "leaderboard.md").read_text().startswith(f"# Leaderboard: {sweep}")
        assert scores_of(tmp_path / "results" / sweep) == pytest.approx(
            scores_of(tmp_path / "results" / "sweep")
        )
    # merged on request: twice the studies, each sweep's study k a study of its own
    assert main(["score", str(tmp_path / "results"), "--out", str(out / "merged"), "--merge-sweeps"]) == 0
    assert "6 studies per submission and workload" in (out / "merged" / "leaderboard.md").read_text()


def test_a_study_stored_as_a_string(folder, capsys) -> None:
    record = rewrite(trial(folder, "adamw", "w2", 1), study="1")
    assert f"{record}: study: input should be a valid integer (got '1')" in refused(folder, capsys)


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"status": "bogus"}, "status: input should be 'reached', 'budget_exhausted'"),
        ({"time_to_target_s": "fast"}, "time_to_target_s: input should be a valid number (got 'fast')"),
        ({"time_to_target_s": "nan"}, "time_to_target_s: input should be a finite number"),
        ({"time_to_target_s": "-inf"}, "time_to_target_s: input should be a finite number"),
        ({"steps_to_target": 12.5}, "steps_to_target: input should be a valid integer"),
        ({"framework": "tensorflow"}, "framework: input should be 'torch' or 'jax'"),
        ({"sweep": DELETE}, "sweep: missing"),
        ({"mystery": 1}, "mystery: unknown field"),
    ],
)
def test_unknown_values_and_unreadable_types(folder, capsys, changes, message) -> None:
    record = rewrite(trial(folder, "adamw", "w1", 2), **changes)
    assert f"{record}: {message}" in refused(folder, capsys)


def test_an_evals_csv_lacking_a_column(folder, capsys) -> None:
    directory = trial(folder, "lion", "w2", 2)
    evals = directory / results.EVALS_NAME
    lines = evals.read_text().splitlines()
    header = lines[0].split(",")
    column = header.index("validation_metric")
    evals.write_text(
        "\n".join(",".join(c for i, c in enumerate(line.split(",")) if i != column) for line in lines)
    )
    record = rewrite(directory)
    assert f"{record}: evals.csv lacks the column(s) validation_metric" in refused(folder, capsys)


@pytest.mark.parametrize(
    ("changes", "setting"),
    [
        ({"eval_every_steps": 1}, "eval_every_steps differs on w1/torch"),
        ({"max_submission_time_s": 50.0}, "max_submission_time_s differs on w1/torch"),
        ({"hardware_profile": "h100"}, "hardware_profile differs"),
        ({"submission_sha256": "f" * 64}, "submission_sha256 differs on adamw"),
        ({"target": 0.85}, "target differs on w1"),
    ],
)
def test_settings_that_change_a_scores_meaning_must_agree(folder, capsys, changes, setting) -> None:
    for study in range(3):
        rewrite(trial(folder, "adamw", "w1", study), **changes)
    err = refused(folder, capsys)
    assert setting in err and str(trial(folder, "adamw", "w1", 0)) in err and "--split-settings" in err


def test_a_submission_under_another_eval_schedule_is_scored_apart_on_request(folder, capsys) -> None:
    for workload in ("w1", "w2"):
        for study in range(3):
            rewrite(trial(folder, "sgd", workload, study), eval_every_steps=1)
    out = folder.parent / "report"
    assert main(["score", str(folder), "--out", str(out), "--split-settings"]) == 0
    assert "scoring 2 parts apart: settings_1, settings_2" in capsys.readouterr().out
    first, second = (
        (out / "settings_1" / "leaderboard.csv").read_text(),
        (out / "settings_2" / "leaderboard.csv").read_text(),
    )
    assert ("sgd" in first) != ("sgd" in second) and "adamw" in first + second


def test_a_submission_whose_own_trials_disagree_cannot_be_split(folder, capsys) -> None:
    rewrite(trial(folder, "sgd", "w1", 0), eval_every_steps=1)
    err = refused(folder, capsys, "--split-settings")
    assert "sgd [torch]'s own trials were made under different settings" in err


def test_a_missing_trial_makes_studies_unequal(folder, capsys) -> None:
    extra = make_record("lion", "w2", 9.0, study=0, trial=1)
    write_trial(folder, extra)  # lion has 2 trials in study 0 and 1 elsewhere: not a fair best-of
    assert "trials per study differ" in refused(folder, capsys)


def test_smoke_runs_are_left_out_by_default(folder, capsys) -> None:
    write_trial(folder.parent / "smoke", make_record("adamw", "w1", 1.0, sweep="smoke") | {"max_steps": 5})
    for directory in [trial(folder, "adamw", "w1", s) for s in range(3)]:
        rewrite(directory, max_steps=10)
    out = folder.parent / "report"
    assert main(["score", str(folder), "--out", str(out)]) == 0
    markdown = (out / "leaderboard.md").read_text()
    assert "3 smoke runs (trials capped by max_steps=10" in markdown and "--include-smoke" in markdown
    assert "smoke runs" in (out / "report.html").read_text()
    with pytest.raises(AlgoperfError, match="every trial is a smoke run"):
        scoring.score(results.load(folder.parent / "smoke"))
    # scoring them on request still needs one cap per workload: adamw's 10 against nobody else's
    with pytest.raises(AlgoperfError, match="max_steps differs on w1/torch"):
        scoring.score(results.load(folder), include_smoke=True)


# ---- random damage never changes a published score silently --------------------------------

TRIALS = [(s, w, study) for (s, w), studies in TABLE.items() for study in range(len(studies))]
FIELDS = sorted(
    set(make_record("a", "w", 1.0))
    - {"signature", "hardware", "software", "hparams", "submission_files", "isolation"}
)
VALUES = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(-3, 300),
    st.floats(allow_nan=True, allow_infinity=True, width=32),
    st.sampled_from(["1", "fast", "nan", "inf", "-inf", "reached", "failed", "torch", "adamw", "w2", ""]),
)


# Each damage returns the folders it touched; a refusal must name one of them.


def _edit_field(root: Path, where: Path, draw: Any) -> list[Path]:
    rewrite(where, **{draw(st.sampled_from(FIELDS)): draw(VALUES)})
    return [where]


def _copy_trial(root: Path, where: Path, draw: Any) -> list[Path]:
    copy = draw(
        st.sampled_from(
            [
                root / "backup",
                root / "sweep/lion/w2/torch/study_0/trial_3",
                root / "x" / where.relative_to(root),
            ]
        )
    )
    shutil.copytree(where, copy)
    return [where, copy]


def _move_trial(root: Path, where: Path, draw: Any) -> list[Path]:
    s, w, study = draw(st.sampled_from(TRIALS))
    destination = trial(root, s, w, study).parent / "trial_9"
    shutil.move(where, destination)
    return [destination]


def _edit_evals(root: Path, where: Path, draw: Any) -> list[Path]:
    evals = where / results.EVALS_NAME
    lines = evals.read_text().splitlines()
    row = draw(st.integers(1, len(lines) - 1))
    cells = lines[row].split(",")
    cells[draw(st.integers(0, len(cells) - 1))] = str(draw(VALUES))
    lines[row] = ",".join(cells)
    evals.write_text("\n".join(lines) + "\n")
    rewrite(where)
    return [where]


DAMAGES: list[Callable[[Path, Path, Any], list[Path]]] = [_edit_field, _copy_trial, _move_trial, _edit_evals]


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(data=st.data())
def test_random_damage_never_changes_a_score_silently(pristine: Path, data: st.DataObject) -> None:
    known = scores_of(pristine)
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp) / "results"
        shutil.copytree(pristine, root)
        s, w, study = data.draw(st.sampled_from(TRIALS))
        where = trial(root, s, w, study)
        touched = data.draw(st.sampled_from(DAMAGES))(root, where, data.draw)
        try:
            loaded = results.load(root)
            scored = scoring.score(loaded, n_boot=10)
        except AlgoperfError as e:
            # refused, naming a record the damage touched (or the study it left short)
            named = any(str(path) in str(e) for path in touched)
            assert named or f"{s} on {w}, study {study}" in str(e), str(e)
            return
        published = dict(zip(scored.leaderboard["competitor"], scored.leaderboard["score"], strict=True))
        assert published.keys() == known.keys()
        for competitor, value in known.items():
            assert math.isclose(published[competitor], value, rel_tol=1e-12), (competitor, loaded.invalid)
