"""Record signing: the key, the canonical bytes, and `algoperf score` refusing edited records."""

from __future__ import annotations

import hashlib
import json
import math
import stat
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from test_results import full_record, trial_folder
from test_scoring import make_record, write_trial

from algoperf import results, signing
from algoperf.cli import main
from algoperf.errors import AlgoperfError

# ---- the key ---------------------------------------------------------------------------------


@pytest.fixture
def fresh_key(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A key path with nothing there yet, two missing folders deep."""
    path = tmp_path / "config" / "algoperf" / "record-signing.key"
    monkeypatch.setenv(signing.KEY_ENV, str(path))
    return path


def test_key_path_follows_the_environment(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(signing.KEY_ENV, str(tmp_path / "k"))
    assert signing.key_path() == tmp_path / "k"
    monkeypatch.delenv(signing.KEY_ENV)
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "xdg"))
    assert signing.key_path() == tmp_path / "xdg" / "algoperf" / "record-signing.key"
    monkeypatch.delenv("XDG_CONFIG_HOME")
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    assert signing.key_path() == tmp_path / "home" / ".config" / "algoperf" / "record-signing.key"


def test_key_is_made_once_private_and_then_reused(fresh_key: Path) -> None:
    with pytest.raises(signing.MissingKey, match=str(fresh_key)):
        signing.load_key(create=False)
    assert not fresh_key.exists()
    key = signing.load_key()
    assert len(key) == 32 and fresh_key.read_bytes() == key
    assert stat.S_IMODE(fresh_key.stat().st_mode) == 0o600
    for folder in (fresh_key.parent, fresh_key.parent.parent):
        assert stat.S_IMODE(folder.stat().st_mode) == 0o700
    assert signing.load_key() == key and signing.load_key(create=False) == key


def test_key_others_can_read_is_refused(fresh_key: Path) -> None:
    signing.load_key()
    fresh_key.chmod(0o640)
    with pytest.raises(AlgoperfError, match=f"chmod 600 {fresh_key}"):
        signing.load_key()


def test_processes_racing_to_make_the_key_all_get_the_same_one(fresh_key: Path) -> None:
    code = "import sys; from algoperf.signing import load_key; sys.stdout.write(load_key().hex())"
    procs = [subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE) for _ in range(4)]
    keys = {proc.communicate(timeout=60)[0] for proc in procs}
    assert all(proc.returncode == 0 for proc in procs)
    assert keys == {fresh_key.read_bytes().hex().encode()}


# ---- signing ---------------------------------------------------------------------------------

KEY = b"k" * 32
OTHER_KEY = b"o" * 32


def awkward_record() -> dict[str, Any]:
    return {
        "time_to_target_s": 1.0,  # an int-looking float must stay a float
        "steps": 10,
        "best_validation": math.inf,
        "worst": -math.inf,
        "final_validation": math.nan,
        "nested": {"b": [1.5, math.nan, (2, 3)], "a": {"deep": math.inf, "name": "Zoë — ✓"}},
        "submission": "ünïcode 提交",
        "error": None,
        "flag": True,
    }


def test_signature_survives_a_json_round_trip() -> None:
    signed = signing.sign(awkward_record(), KEY)
    assert signed["signature"]["alg"] == "hmac-sha256"
    assert signed["signature"]["key_id"] == signing.key_id(KEY) and len(signing.key_id(KEY)) == 16
    assert signing.signature_problem(signed, KEY) is None
    stored = json.loads(json.dumps(signing.json_safe(signed), indent=2))  # as write_record stores it
    assert stored["best_validation"] == "inf" and isinstance(stored["time_to_target_s"], float)
    assert signing.canonical_json(stored) == signing.canonical_json(signed)
    assert signing.signature_problem(stored, KEY) is None
    # read_record turns "inf" back into floats: still the same signed content
    back = {k: results._float_or_special(v) for k, v in stored.items()}
    assert math.isinf(back["best_validation"]) and signing.signature_problem(back, KEY) is None


def test_sign_leaves_the_record_alone_and_replaces_an_old_signature() -> None:
    record = awkward_record()
    signed = signing.sign(record, KEY)
    assert "signature" not in record
    again = signing.sign(signed, OTHER_KEY)
    assert signing.signature_problem(again, OTHER_KEY) is None


def test_each_kind_of_bad_signature_has_its_reason() -> None:
    signed = signing.sign(awkward_record(), KEY)
    assert signing.signature_problem(awkward_record(), KEY) == "unsigned"
    assert signing.signature_problem(signed, OTHER_KEY).startswith("signed with another key (key_id ")
    edited = dict(signed, time_to_target_s=0.5)
    assert "edited after it was written" in signing.signature_problem(edited, KEY)
    added = dict(signed, extra=1)
    assert "edited after it was written" in signing.signature_problem(added, KEY)
    forged = json.loads(json.dumps(signing.json_safe(signed)))
    forged["signature"]["value"] = "é" * 64  # not even hex
    assert "edited after it was written" in signing.signature_problem(forged, KEY)


# ---- records on disk -------------------------------------------------------------------------


def test_write_record_signs_and_notes_the_evals(tmp_path: Path) -> None:
    (tmp_path / "with").mkdir()
    (tmp_path / "with" / results.EVALS_NAME).write_bytes(b"step\r\n1\r\n")
    for name in ("with", "without"):
        results.write_record(tmp_path / name, full_record(best_validation=math.inf))
    with_evals = json.loads((tmp_path / "with" / results.RECORD_NAME).read_text())
    without = json.loads((tmp_path / "without" / results.RECORD_NAME).read_text())
    assert with_evals["evals_sha256"] == hashlib.sha256(b"step\r\n1\r\n").hexdigest()
    assert without["evals_sha256"] is None
    key = signing.load_key(create=False)
    assert signing.signature_problem(with_evals, key) is None
    loaded = results.load(tmp_path)
    assert loaded.bad_signatures == []  # (both are invalid otherwise: not in trial folders)


def test_failure_records_are_signed(tmp_path: Path) -> None:
    from algoperf.config import compose

    cfg = compose(["workload=toy", "submission=sgd", "hardware=test", "sweep=s", f"results_dir={tmp_path}"])
    path = results.write_failure_record(tmp_path, cfg, "sgd", "killed")
    assert signing.signature_problem(json.loads(path.read_text()), signing.load_key()) is None


def test_without_any_key_every_record_is_untrusted(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    signed, unsigned = full_record(), full_record(trial=1, evals_sha256=None)
    results.write_record(trial_folder(tmp_path, signed), signed)
    trial_folder(tmp_path, unsigned).mkdir(parents=True)
    (trial_folder(tmp_path, unsigned) / results.RECORD_NAME).write_text(json.dumps(unsigned))
    session_key = signing.load_key(create=False)
    missing = tmp_path / "nowhere" / "key"
    monkeypatch.setenv(signing.KEY_ENV, str(missing))
    loaded = results.load(tmp_path)
    assert len(loaded.trials) == 0 and not missing.exists()  # loading never makes a key
    assert loaded.bad_signatures == [
        f"{trial_folder(tmp_path, signed) / 'record.json'}: signed with another key "
        f"(key_id {signing.key_id(session_key)})",
        f"{trial_folder(tmp_path, unsigned) / 'record.json'}: unsigned",
    ]
    assert len(results.load(tmp_path, trust_unsigned=True).trials) == 2


# ---- `algoperf score` refuses edited records -------------------------------------------------


def scoreable(root: Path) -> Path:
    """Two competitors on one workload, two studies each; the path of one of lion's records."""
    for submission, times in {"adamw": [1.0, 2.0], "lion": [1.5, 1.2]}.items():
        for study, time in enumerate(times):
            record = make_record(submission, "w1", time, study=study)
            record["workload_sha256"] = None  # w1 is no real workload: nothing for --verify to compare
            write_trial(root, record)
    return (
        results.trial_dir(root, results.TrialKey("sweep", "lion", "w1", "torch", 1, 0)) / results.RECORD_NAME
    )


def edit_json(path: Path, change) -> None:
    record = json.loads(path.read_text())
    change(record)
    path.write_text(json.dumps(record, indent=2))


def _resign_with_another_key(path: Path) -> None:
    record = json.loads(path.read_text())
    record["time_to_target_s"] = 0.1
    path.write_text(json.dumps(signing.sign(record, OTHER_KEY), indent=2))


EDITS = {
    "time_to_target_s": lambda p: edit_json(p, lambda r: r.update(time_to_target_s=0.1)),
    "status": lambda p: edit_json(p, lambda r: r.update(status="budget_exhausted")),
    "signature deleted": lambda p: edit_json(p, lambda r: r.pop("signature")),
    "another key": _resign_with_another_key,
    "evals.csv": lambda p: (p.parent / results.EVALS_NAME).write_text(
        (p.parent / results.EVALS_NAME).read_text().replace("0.", "0.0", 1)
    ),
    "evals.csv deleted": lambda p: (p.parent / results.EVALS_NAME).unlink(),
}


# Edits after which the record still agrees with itself and its evals.csv (only the signature
# check catches them); the others are also caught by the record checks on loading.
STILL_CONSISTENT = ("signature deleted", "evals.csv")


def folder_bytes(root: Path) -> dict[str, bytes]:
    return {str(p): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


def test_untouched_records_score(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    scoreable(tmp_path / "results")
    assert main(["score", str(tmp_path / "results"), "--out", str(tmp_path / "report")]) == 0
    assert "nverified" not in (tmp_path / "report" / "leaderboard.md").read_text()
    assert "signature" not in capsys.readouterr().err
    assert main(["score", str(tmp_path / "results"), "--verify", "--out", str(tmp_path / "report")]) == 0
    assert "all 4 records match" in capsys.readouterr().out


@pytest.mark.parametrize("edit", EDITS)
def test_an_edited_record_is_refused_and_trusted_on_request(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], edit: str
) -> None:
    root = tmp_path / "results"
    record_path = scoreable(root)
    EDITS[edit](record_path)
    before = folder_bytes(root)
    out = tmp_path / "report"
    capsys.readouterr()

    assert main(["score", str(root), "--out", str(out)]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error:") and f"\n  {record_path}: " in err
    assert "re-run those trials" in err and "--trust-unsigned" in err
    assert not out.exists()

    if edit in STILL_CONSISTENT:
        assert main(["score", str(root), "--out", str(out), "--trust-unsigned"]) == 0
        captured = capsys.readouterr()
        assert "warning:" in captured.err and str(record_path) in captured.err
        markdown = (out / "leaderboard.md").read_text()
        assert (
            "Unverified: these scores include 1 record failing" in markdown and str(record_path) in markdown
        )
        assert "Unverified" in (out / "report.html").read_text()
    else:  # trusting a record's signature does not make its content consistent
        assert main(["score", str(root), "--out", str(out), "--trust-unsigned"]) == 2
        err = capsys.readouterr().err
        assert "1 trial record is not valid" in err and f"\n  {record_path}: " in err

    assert main(["score", str(root), "--verify", "--out", str(out)]) == 1
    verify_out = capsys.readouterr().out
    assert "1 of 4 records fail the signature check" in verify_out
    assert str(record_path) in verify_out and "do not match the current code" not in verify_out
    assert folder_bytes(root) == before  # nothing in the results folder was changed


def test_only_the_edited_record_is_left_out(tmp_path: Path) -> None:
    record_path = scoreable(tmp_path)
    EDITS["time_to_target_s"](record_path)
    loaded = results.load(tmp_path)
    assert len(loaded.trials) == 3
    assert loaded.bad_signatures == [
        f"{record_path}: signature does not match the content (edited after it was written)"
    ]
    lion = (loaded.evals["submission"] == "lion") & (loaded.evals["study"] == 1)
    assert not lion.any() and len(loaded.evals) == 3 * 4  # its evals are left out too
    trusted = results.load(tmp_path, trust_unsigned=True)
    assert len(trusted.trials) == 3 and trusted.bad_signatures == loaded.bad_signatures
    # trusted, it is checked like any record: its time disagrees with its evals.csv
    assert trusted.invalid == [
        f"{record_path}: reached at 0.1 s (step 12) but evals.csv first meets the target at 1.2 s (step 12)"
    ]
