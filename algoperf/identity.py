"""Whole-submission code identity: a hash of every file of a submission folder, and the snapshot a
trial imports, so a record names exactly the code that ran (helpers and search space included)."""

from __future__ import annotations

import hashlib
import os
from pathlib import Path
from typing import Any

from algoperf.errors import AlgoperfError

MAX_FILES = 2_000
MAX_BYTES = 64 * 1024 * 1024
FILE_MODE = 0o644  # the worker may run as another (unprivileged) user: it must read the copy
FOLDER_MODE = 0o755


def _ignored(name: str) -> bool:
    """Caches and hidden files are not code that runs (and may change on every import)."""
    return name.startswith(".") or name == "__pycache__" or name.endswith(".pyc")


def _inside(path: str, root: str) -> bool:
    return os.path.commonpath([path, root]) == root


def submission_files(folder: Path) -> list[Path]:
    """Every regular file under `folder`, sorted by relative path, without __pycache__/, *.pyc and
    hidden files or folders. Refuses a folder too big to be a submission, or one with a symlink
    pointing outside it."""
    folder = Path(folder)
    root = os.path.realpath(folder)
    if not os.path.isdir(root):
        raise AlgoperfError(f"submission folder {folder} does not exist. Check the path.")
    found: dict[str, Path] = {}
    total = 0
    for directory, subdirectories, files in os.walk(root, followlinks=True):
        here = os.path.realpath(directory)
        kept = []
        for name in sorted(subdirectories):
            path = os.path.join(directory, name)
            if _ignored(name):
                continue
            # A link back to this folder or one above it would be walked forever.
            if os.path.islink(path) and _inside(here, _link_target(path, root, folder)):
                continue
            kept.append(name)
        subdirectories[:] = kept
        for name in files:
            path = os.path.join(directory, name)
            if _ignored(name):
                continue
            if os.path.islink(path):
                _link_target(path, root, folder)
            if not os.path.isfile(path):  # a socket, a fifo, a dangling link: not code
                continue
            total += os.path.getsize(path)
            relative = Path(os.path.relpath(path, root)).as_posix()
            found[relative] = folder / relative
            if len(found) > MAX_FILES or total > MAX_BYTES:
                raise AlgoperfError(
                    f"submission folder {folder} holds more than {MAX_FILES} files or "
                    f"{MAX_BYTES // 2**20} MiB: too much to snapshot for every trial. Move data, "
                    "checkpoints and virtual environments out of it (hidden folders are skipped)."
                )
    return [found[relative] for relative in sorted(found)]


def _link_target(path: str, root: str, folder: Path) -> str:
    """Where the symlink `path` leads; refused when that is outside the submission folder."""
    real = os.path.realpath(path)
    if not _inside(real, root):
        raise AlgoperfError(
            f"submission folder {folder} has a symlink {os.path.relpath(path, root)} pointing outside "
            f"it (to {real}): a trial runs a copy of the folder, so the link would break or hide "
            "code. Copy the file into the folder instead of linking it."
        )
    return real


def tree_sha256(files: dict[str, str]) -> str:
    """The hash of a whole submission from its {relative path: sha256} entries."""
    digest = hashlib.sha256()
    for line in sorted(f"{relative}\0{sha}\n" for relative, sha in files.items()):
        digest.update(line.encode())
    return digest.hexdigest()


def _identity(files: dict[str, str]) -> dict[str, Any]:
    files = dict(sorted(files.items()))
    return {"tree_sha256": tree_sha256(files), "files": files}


def _relative(path: Path, folder: Path) -> str:
    return path.relative_to(folder).as_posix()


def submission_identity(folder: Path) -> dict[str, Any]:
    """{"tree_sha256": ..., "files": {relative path: sha256}} of the submission folder as it is now."""
    folder = Path(folder)
    files = {
        _relative(path, folder): hashlib.sha256(path.read_bytes()).hexdigest()
        for path in submission_files(folder)
    }
    return _identity(files)


def snapshot_submission(folder: Path, dest: Path) -> dict[str, Any]:
    """Copy the submission's files into `dest` (which must be empty or missing) and return the
    identity of the bytes copied: the trial imports `dest`, so this is exactly the code that ran."""
    folder, dest = Path(folder), Path(dest)
    if dest.exists() and any(dest.iterdir()):
        raise AlgoperfError(
            f"snapshot folder {dest} is not empty: stale files there would be importable by the "
            "trial. Snapshot into a new, empty folder."
        )
    _make_folder(dest)
    files = {}
    for path in submission_files(folder):
        relative = _relative(path, folder)
        data = path.read_bytes()  # hash the very bytes written: the source may change meanwhile
        target = dest / relative
        for parent in reversed(target.relative_to(dest).parents[:-1]):
            _make_folder(dest / parent)
        fd = os.open(target, os.O_CREAT | os.O_EXCL | os.O_WRONLY, FILE_MODE)
        with os.fdopen(fd, "wb") as f:
            os.fchmod(f.fileno(), FILE_MODE)  # the umask may have narrowed the mode
            f.write(data)
        files[relative] = hashlib.sha256(data).hexdigest()
    return _identity(files)


def _make_folder(path: Path) -> None:
    path.mkdir(parents=True, exist_ok=True)
    os.chmod(path, FOLDER_MODE)


def changed_files(recorded: dict[str, str], current: dict[str, str]) -> list[str]:
    """What differs between two {relative path: sha256} maps, one phrase per file, sorted."""
    changes = []
    for relative in sorted(set(recorded) | set(current)):
        if relative not in current:
            changes.append(f"{relative} removed")
        elif relative not in recorded:
            changes.append(f"{relative} added")
        elif recorded[relative] != current[relative]:
            changes.append(f"{relative} changed")
    return changes
