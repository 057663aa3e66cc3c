"""Whole-submission identity: which files count, the snapshot, and `score --verify` naming changes."""

from __future__ import annotations

import hashlib
import os
import stat
from pathlib import Path
from typing import Any

import pytest
from test_scoring import make_record, write_trial

from algoperf import identity
from algoperf.errors import AlgoperfError
from algoperf.verify import verify_records

CODE = {
    "torch.py": "from helper import lr\n",
    "helper.py": "lr = 0.1\n",
    "search_space.yaml": "learning_rate: {min: 1.0e-4, max: 1.0e-1, scale: log}\n",
    "sub/util.py": "X = 1\n",
}
NOISE = {  # what a submission folder gathers that is not code that runs
    "__pycache__/helper.cpython-311.pyc": "bytecode",
    "sub/__pycache__/util.cpython-311.pyc": "bytecode",
    "stray.pyc": "bytecode",
    ".git/config": "[core]",
    ".hidden.py": "secret = 1",
    "sub/.DS_Store": "finder",
}


def make_submission(folder: Path, files: dict[str, str] = CODE) -> Path:
    for relative, text in files.items():
        (folder / relative).parent.mkdir(parents=True, exist_ok=True)
        (folder / relative).write_text(text)
    return folder


def test_identity_ignores_caches_and_hidden_files(tmp_path: Path) -> None:
    folder = make_submission(tmp_path / "sub")
    before = identity.submission_identity(folder)
    make_submission(folder, NOISE)
    listed = [path.relative_to(folder).as_posix() for path in identity.submission_files(folder)]
    assert listed == sorted(CODE)
    assert identity.submission_identity(folder) == before


def test_tree_hash_is_over_sorted_path_and_hash_lines(tmp_path: Path) -> None:
    folder = make_submission(tmp_path / "sub")
    files = {rel: hashlib.sha256(text.encode()).hexdigest() for rel, text in CODE.items()}
    lines = "".join(sorted(f"{rel}\0{sha}\n" for rel, sha in files.items()))
    assert identity.submission_identity(folder) == {
        "tree_sha256": hashlib.sha256(lines.encode()).hexdigest(),
        "files": dict(sorted(files.items())),
    }


@pytest.mark.parametrize(
    "change",
    ["edit helper.py", "edit search_space.yaml", "add extra.py", "remove sub/util.py", "rename helper.py"],
)
def test_any_file_change_changes_the_tree_hash(tmp_path: Path, change: str) -> None:
    folder = make_submission(tmp_path / "sub")
    before = identity.submission_identity(folder)
    apply_change(folder, change)
    assert identity.submission_identity(folder)["tree_sha256"] != before["tree_sha256"]


def apply_change(folder: Path, change: str) -> None:
    verb, relative = change.split(" ", 1)
    if verb == "edit":
        with open(folder / relative, "a") as f:
            f.write("# tuned after the fact\n")
    elif verb == "add":
        (folder / relative).write_text("y = 2\n")
    elif verb == "remove":
        (folder / relative).unlink()
    else:
        (folder / relative).rename(folder / f"renamed_{relative}")


def test_snapshot_copies_exactly_the_identified_files(tmp_path: Path) -> None:
    folder = make_submission(make_submission(tmp_path / "sub"), NOISE)
    (folder / "helper.py").chmod(0o600)  # the copy is readable by everyone all the same
    old_umask = os.umask(0o077)
    try:
        copied = identity.snapshot_submission(folder, tmp_path / "snap" / "submission")
    finally:
        os.umask(old_umask)
    dest = tmp_path / "snap" / "submission"
    assert copied == identity.submission_identity(folder)
    assert copied == identity.submission_identity(dest)
    on_disk = sorted(p.relative_to(dest).as_posix() for p in dest.rglob("*") if p.is_file())
    assert on_disk == sorted(CODE)
    for relative, text in CODE.items():
        assert (dest / relative).read_text() == text
        assert stat.S_IMODE((dest / relative).stat().st_mode) == 0o644
    for sub in (dest, dest / "sub"):
        assert stat.S_IMODE(sub.stat().st_mode) == 0o755


def test_snapshot_refuses_a_folder_holding_files(tmp_path: Path) -> None:
    folder = make_submission(tmp_path / "sub")
    (tmp_path / "snap").mkdir()
    (tmp_path / "snap" / "stale.py").write_text("x = 1\n")
    with pytest.raises(AlgoperfError, match="not empty"):
        identity.snapshot_submission(folder, tmp_path / "snap")


def test_links_inside_count_and_links_outside_are_refused(tmp_path: Path) -> None:
    folder = make_submission(tmp_path / "sub")
    (folder / "alias.py").symlink_to(folder / "helper.py")
    (folder / "loop").symlink_to(folder, target_is_directory=True)  # walked once, not forever
    files = identity.submission_identity(folder)["files"]
    assert files["alias.py"] == files["helper.py"]
    assert not any(relative.startswith("loop/") for relative in files)
    (tmp_path / "outside.py").write_text("z = 3\n")
    (folder / "escape.py").symlink_to(tmp_path / "outside.py")
    with pytest.raises(AlgoperfError, match="escape.py pointing outside"):
        identity.submission_files(folder)


def test_oversized_folders_are_refused(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    folder = make_submission(tmp_path / "sub")
    for k in range(identity.MAX_FILES + 1 - len(CODE)):
        (folder / f"f{k}.txt").touch()
    with pytest.raises(AlgoperfError, match=f"{folder} holds more than 2000 files"):
        identity.submission_files(folder)
    small = make_submission(tmp_path / "small")
    monkeypatch.setattr(identity, "MAX_BYTES", 40)
    with pytest.raises(AlgoperfError, match="MiB"):
        identity.submission_files(small)


# ---- score --verify --------------------------------------------------------------------------


def record_of(folder: Path, **fields: Any) -> dict[str, Any]:
    code = identity.submission_identity(folder)
    record = make_record("sub", "w1", 1.0, **fields)
    record.update(
        workload_sha256=None,  # w1 is no real workload: only the submission is compared
        submission_folder=str(folder.resolve()),
        submission_sha256=code["tree_sha256"],
        submission_files=code["files"],
    )
    return record


def results_of(tmp_path: Path) -> tuple[Path, Path]:
    """A submission folder and a results folder with two of its trials."""
    folder = make_submission(tmp_path / "sub")
    root = tmp_path / "results"
    write_trial(root, record_of(folder, study=0))
    write_trial(root, record_of(folder, study=1))
    return folder, root


def test_verify_passes_an_unchanged_submission(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    folder, root = results_of(tmp_path)
    make_submission(folder, NOISE)  # caches and dotfiles appearing are not changes
    assert verify_records(root)
    assert "all 2 records match" in capsys.readouterr().out


@pytest.mark.parametrize(
    ("change", "named"),
    [
        ("edit helper.py", "helper.py changed since the trial ran"),
        ("edit search_space.yaml", "search_space.yaml changed since the trial ran"),
        ("edit sub/util.py", "sub/util.py changed since the trial ran"),
        ("add extra.py", "extra.py added since the trial ran"),
        ("remove helper.py", "helper.py removed since the trial ran"),
    ],
)
def test_verify_names_each_changed_file(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], change: str, named: str
) -> None:
    folder, root = results_of(tmp_path)
    apply_change(folder, change)
    assert not verify_records(root)
    out = capsys.readouterr().out
    assert "2 of 2 records do not match" in out
    assert out.count(named) == 2, out  # once per record


def test_verify_names_every_change_of_a_record(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    folder, root = results_of(tmp_path)
    for change in ("edit helper.py", "add extra.py", "remove search_space.yaml"):
        apply_change(folder, change)
    assert not verify_records(root)
    out = capsys.readouterr().out
    assert "extra.py added, helper.py changed, search_space.yaml removed since the trial ran" in out


def test_verify_says_when_the_folder_is_gone(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    folder, root = results_of(tmp_path)
    folder.rename(tmp_path / "moved")
    assert not verify_records(root)
    assert f"submission folder {folder.resolve()} no longer exists" in capsys.readouterr().out
