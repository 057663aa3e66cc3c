"""The on-disk cache that keeps a trial's data loading cheap: datasets decoded once and kept as
`.npy` files that later trials memory-map, and file digests remembered by size and mtime.

Every trial of a sweep is a fresh process that loads its workload's data; decoding gzip files
or hashing a dataset's files there cost about a second per trial, paid again by every one of a
sweep's trials. Root: `$ALGOPERF_CACHE` (default `~/.cache/algoperf`).
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import tempfile
from collections.abc import Callable
from pathlib import Path

import numpy as np


def cache_root() -> Path:
    root = os.environ.get("ALGOPERF_CACHE")
    return Path(root) if root else Path.home() / ".cache" / "algoperf"


def files_sha256(files: list[Path]) -> str:
    """SHA-256 over the names and contents of the files, remembered in the cache per file path,
    size and mtime (a changed file changes one of them, so it is hashed again)."""
    stats = [(str(path.resolve()), path.stat().st_size, path.stat().st_mtime_ns) for path in files]
    key = hashlib.sha256(json.dumps(stats).encode()).hexdigest()
    memo = cache_root() / "digests" / f"{key}.txt"
    try:
        digest = memo.read_text().strip()
        if len(digest) == 64 and all(c in "0123456789abcdef" for c in digest):
            return digest
    except OSError:
        pass
    sha = hashlib.sha256()
    for path in files:
        sha.update(path.name.encode())
        with open(path, "rb") as f:
            for chunk in iter(lambda: f.read(1 << 22), b""):
                sha.update(chunk)
    digest = sha.hexdigest()
    write_atomically(memo, digest.encode())
    return digest


def cached_arrays(
    folder: Path, names: tuple[str, ...], build: Callable[[], dict[str, np.ndarray]]
) -> dict[str, np.ndarray]:
    """The arrays `names`, memory-mapped read-only from `folder/<name>.npy`; built by `build()`
    and written there first when any is missing or unreadable. Name the folder after
    everything the arrays depend on (e.g. the source files' digest): it is never invalidated."""
    try:
        return {name: np.load(folder / f"{name}.npy", mmap_mode="r", allow_pickle=False) for name in names}
    except (OSError, ValueError):
        pass
    arrays = build()
    for name in names:
        buffer = io.BytesIO()
        np.save(buffer, np.ascontiguousarray(arrays[name]), allow_pickle=False)
        write_atomically(folder / f"{name}.npy", buffer.getvalue())
    return {name: arrays[name] for name in names}


def write_atomically(path: Path, data: bytes) -> None:
    """A crash mid-write leaves no half-written file behind; a folder that cannot be written
    (a read-only home) only costs the cache."""
    try:
        fd, tmp = _temporary_beside(path)
    except OSError:
        return
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
        os.replace(tmp, path)
    except OSError:
        Path(tmp).unlink(missing_ok=True)


def _temporary_beside(path: Path) -> tuple[int, str]:
    path.parent.mkdir(parents=True, exist_ok=True)
    return tempfile.mkstemp(dir=path.parent, prefix=path.name, suffix=".tmp")
