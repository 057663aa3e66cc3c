"""Record signing: an HMAC over each record.json, keyed by a secret of the harness's user, so a
record edited after it was written (by hand, by a script, by a submission) is detected."""

from __future__ import annotations

import functools
import hashlib
import hmac
import json
import math
import os
import secrets
import stat
import time
from pathlib import Path
from typing import Any

from algoperf.errors import AlgoperfError

ALGORITHM = "hmac-sha256"
KEY_BYTES = 32
MIN_KEY_BYTES = 16
KEY_ENV = "ALGOPERF_KEY_FILE"
#: How long a reader waits for a key another process has created but not yet written.
KEY_WRITE_WAIT_S = 2.0


class MissingKey(AlgoperfError):
    """There is no record-signing key yet (nothing has been signed on this machine)."""


def key_path() -> Path:
    """$ALGOPERF_KEY_FILE, else $XDG_CONFIG_HOME/algoperf/record-signing.key (XDG: ~/.config)."""
    if os.environ.get(KEY_ENV):
        return Path(os.environ[KEY_ENV]).expanduser()
    config = os.environ.get("XDG_CONFIG_HOME") or str(Path.home() / ".config")
    return Path(config).expanduser() / "algoperf" / "record-signing.key"


def load_key(create: bool = True) -> bytes:
    """The record-signing key; made (32 random bytes, mode 0600) when missing and `create`.

    Raises MissingKey when it is missing and not `create`, and AlgoperfError when other users
    could read or replace it (they could then forge records).
    """
    path = key_path()
    deadline = time.monotonic() + KEY_WRITE_WAIT_S
    while True:
        try:
            key = _read_private(path)
        except FileNotFoundError:
            if not create:
                raise MissingKey(
                    f"no record-signing key at {path}: no record was signed on this machine. "
                    f"Run a trial to make one, or set {KEY_ENV} to the key that signed the records."
                ) from None
            # Then read it back, whether this process or another one (first to create it) wrote it.
            _create_key(path)
            continue
        # A key shorter than its minimum is one another process is still writing (or damaged).
        if len(key) >= MIN_KEY_BYTES:
            return key
        if time.monotonic() > deadline:
            raise AlgoperfError(
                f"record-signing key {path} holds {len(key)} bytes, fewer than {MIN_KEY_BYTES}: it "
                "is damaged. Restore it from a backup; failing that, delete it so a new one is made "
                "(records it signed will then fail verification and need re-running)."
            )
        time.sleep(0.05)


def _read_private(path: Path) -> bytes:
    """Read the key file, refusing one that group or others can access."""
    with open(path, "rb") as f:
        mode = os.fstat(f.fileno()).st_mode
        if mode & 0o077:
            raise AlgoperfError(
                f"record-signing key {path} is accessible by other users (mode "
                f"{stat.S_IMODE(mode):04o}), so they could forge trial records. Fix: chmod 600 {path}"
            )
        return f.read()


def _create_key(path: Path) -> bool:
    """Create the key file with fresh random bytes; False if another process created it first."""
    _make_private_folders(path.parent)
    try:
        fd = os.open(path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o600)
    except FileExistsError:
        return False
    with os.fdopen(fd, "wb") as f:
        f.write(secrets.token_bytes(KEY_BYTES))
        f.flush()
        os.fsync(f.fileno())
    return True


def _make_private_folders(folder: Path) -> None:
    # mkdir(parents=True) gives the parents the default mode: make each missing one 0700 instead.
    missing = []
    while not folder.exists():
        missing.append(folder)
        folder = folder.parent
    for each in reversed(missing):
        try:
            each.mkdir(mode=0o700)
        except FileExistsError:
            pass


@functools.lru_cache(maxsize=8)
def key_id(key: bytes) -> str:
    """A public name of the key: the first 16 hex digits of its SHA-256."""
    return hashlib.sha256(key).hexdigest()[:16]


def json_safe(value: Any) -> Any:
    """JSON has no inf/nan: store them as strings so the file stays standard JSON."""
    if isinstance(value, float) and not math.isfinite(value):
        return "nan" if math.isnan(value) else ("inf" if value > 0 else "-inf")
    if isinstance(value, dict):
        return {k: json_safe(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [json_safe(v) for v in value]
    return value


# One encoder for every record: json.dumps with these options builds a new one on each call, which
# costs a third of the encoding at 10k records.
_CANONICAL = json.JSONEncoder(sort_keys=True, separators=(",", ":"), ensure_ascii=True, allow_nan=False)


def canonical_json(record: dict[str, Any]) -> bytes:
    """The bytes signed: the record without its signature, inf/nan as strings, keys sorted."""
    return _canonical_body({k: v for k, v in record.items() if k != "signature"})


def _canonical_body(body: dict[str, Any]) -> bytes:
    try:
        # json_safe walks every value; a record read from disk holds no inf/nan, so skip it then.
        text = _CANONICAL.encode(body)
    except ValueError:
        text = _CANONICAL.encode(json_safe(body))
    return text.encode("ascii")


def _digest(body: dict[str, Any], key: bytes) -> str:
    return hmac.new(key, _canonical_body(body), hashlib.sha256).hexdigest()


def sign(record: dict[str, Any], key: bytes) -> dict[str, Any]:
    """A copy of `record` with a "signature" field over the rest of it (as JSON will store it:
    dict keys should be strings, as a JSON reader gives them back)."""
    # Sign what a reader will see after a JSON round trip (e.g. int dict keys become strings).
    stored = json.loads(json.dumps(json_safe({k: v for k, v in record.items() if k != "signature"})))
    signed = dict(record)
    signed["signature"] = {"alg": ALGORITHM, "key_id": key_id(key), "value": _digest(stored, key)}
    return signed


def signature_problem(record: dict[str, Any], key: bytes) -> str | None:
    """None when `record` carries a valid signature by `key`; else a short reason."""
    body = {k: v for k, v in record.items() if k != "signature"}
    return body_signature_problem(body, record.get("signature"), key)


def body_signature_problem(body: dict[str, Any], signature: Any, key: bytes) -> str | None:
    """signature_problem of a record whose signature was taken out of it already (saves a copy
    of every record when loading thousands)."""
    if not isinstance(signature, dict) or not isinstance(signature.get("value"), str):
        return "unsigned"
    if signature.get("alg") != ALGORITHM:
        return f"signed with an unknown algorithm {signature.get('alg')!r}"
    if signature.get("key_id") != key_id(key):
        return f"signed with another key (key_id {signature.get('key_id')})"
    if not hmac.compare_digest(signature["value"].encode(), _digest(body, key).encode()):
        return "signature does not match the content (edited after it was written)"
    return None
