"""The results store: one folder per trial, `record.json` written atomically last, `evals.csv`.

Layout: <root>/<sweep>/<submission>/<workload>/<framework>/study_<k>/trial_<j>/. A trial whose
record.json exists is complete. Records are signed (algoperf.signing) and checked on loading.
Never imports torch or jax.
"""

from __future__ import annotations

import contextlib
import csv
import ctypes
import errno
import fcntl
import hashlib
import io
import json
import os
import socket
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, NamedTuple

import numpy as np
import pandas as pd

from algoperf.errors import AlgoperfError
from algoperf.record import SCHEMA_VERSION, STATUSES, TrialRecord, record_problems  # noqa: F401 (re-exported)
from algoperf.sandbox import is_alive
from algoperf.signing import MissingKey, body_signature_problem, json_safe, load_key, sign

if TYPE_CHECKING:
    from algoperf.schema import RunConfig

# The record's fields and schema live with its type (algoperf.record); a record on disk must
# carry every field of TrialRecord.
RECORD_FIELDS = TrialRecord.field_names()

EVAL_FIELDS = (
    "step",
    "submission_time_s",
    "eval_time_s",
    "wall_time_s",
    "train_loss",
    "validation_loss",
    "validation_metric",
    "test_loss",
    "test_metric",
)

RECORD_NAME = "record.json"
EVALS_NAME = "evals.csv"
# evals.csv columns a submission's `diagnostics` adds (informational, never scored).
PLUGIN_PREFIX = "plugin."
CLAIM_NAME = ".claim"
RUNNING_NAME = ".running"


class TrialClaimed(Exception):
    """Another live process holds this trial (a second sweep on the same results folder)."""


@contextlib.contextmanager
def claim(directory: str | Path):
    """Hold an exclusive lock on one trial folder while it runs.

    An OS file lock (flock) is released by the kernel when its process dies, even by SIGKILL,
    so a crashed sweep never leaves a trial locked; two live sweeps never run one trial twice.
    """
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    handle = open(directory / CLAIM_NAME, "a+")
    try:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise TrialClaimed(str(directory)) from None
        if not _still_at(handle, directory / CLAIM_NAME):
            # An overwrite swapped the folder (runner._overwrite) since we opened its lock: the
            # lock we hold is the old folder's; the folder now in place is claimed by that run.
            raise TrialClaimed(str(directory))
        running = directory / RUNNING_NAME
        running.write_text(f"{socket.gethostname()} {os.getpid()}")
        try:
            yield
        finally:
            running.unlink(missing_ok=True)
    finally:
        handle.close()


def _still_at(handle: Any, path: Path) -> bool:
    """Whether an open file is still the one at `path`."""
    try:
        return os.path.samestat(os.fstat(handle.fileno()), os.stat(path))
    except FileNotFoundError:
        return False


def is_running(directory: str | Path) -> bool:
    """Whether a live process is running this trial now.

    `.running` names the host and pid of the process holding the claim. A SIGKILLed process
    leaves the file behind (the lock itself is released by the kernel), so on this host the
    pid is checked; a marker written on another host (a cluster node) is trusted.
    """
    try:
        host, pid = (Path(directory) / RUNNING_NAME).read_text().split()
    except (OSError, ValueError):
        return False
    if host != socket.gethostname():
        return True
    return not pid.isdigit() or is_alive(int(pid))


class TrialKey(NamedTuple):
    """What names one trial, and the six folders its record sits in (TRIAL_KEYS)."""

    sweep: str
    submission: str
    workload: str
    framework: str
    study: int
    trial: int


def trial_dir(root: str | Path, key: TrialKey) -> Path:
    """<root>/<sweep>/<submission>/<workload>/<framework>/study_<k>/trial_<j>."""
    return Path(root, key.sweep, key.submission, key.workload, key.framework) / (
        f"study_{key.study}/trial_{key.trial}"
    )


def trial_dir_for(cfg: RunConfig, submission_name: str) -> Path:
    """The trial folder of a run configuration."""
    trial = cfg.trial if cfg.trial is not None else 0
    return trial_dir(
        cfg.results_dir, TrialKey(cfg.sweep, submission_name, cfg.workload, cfg.framework, cfg.study, trial)
    )


def is_complete(directory: str | Path) -> bool:
    return (Path(directory) / RECORD_NAME).is_file()


def _sha256_or_none(path: Path) -> str | None:
    try:
        return hashlib.sha256(path.read_bytes()).hexdigest()
    except FileNotFoundError:
        return None


def write_record(directory: str | Path, record: dict[str, Any]) -> Path:
    """Write record.json atomically and signed: a reader sees either no record or the whole one.

    The record notes the SHA-256 of the trial's evals.csv (None without one), so the signature
    covers the eval log too.
    """
    missing = [f for f in RECORD_FIELDS if f not in record]
    if missing:
        raise ValueError(f"record lacks fields {missing}")
    if record["status"] not in STATUSES:
        raise ValueError(f"unknown status {record['status']!r}")
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    record = sign({**record, "evals_sha256": _sha256_or_none(directory / EVALS_NAME)}, load_key())
    write_json_atomically(directory / RECORD_NAME, json_safe(record))
    return directory / RECORD_NAME


def write_json_atomically(path: Path, content: Any, *, only_if_new: bool = False) -> bool:
    """Write JSON so that a reader sees the old file or the whole new one, never a part: a
    temporary file in the same folder, fsynced, renamed over `path`, then the folder fsynced
    (so the rename survives a power cut). `only_if_new`: leave an existing file as it is and
    return False (a link fails where a rename would replace); of two writers racing, one wins."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "w") as f:
            json.dump(content, f, indent=2)
            f.flush()
            os.fsync(f.fileno())
        if only_if_new:
            try:
                os.link(tmp, path)
            except FileExistsError:
                return False
        else:
            os.replace(tmp, path)
    finally:
        Path(tmp).unlink(missing_ok=True)  # gone already after a replace
    sync_folder(path.parent)
    return True


# ---- swapping a trial folder (overwrite) ----------------------------------------------------------


def beside(directory: Path, purpose: str) -> Path:
    """A hidden folder next to a trial folder (loaders never descend into hidden folders)."""
    return directory.with_name(f".{directory.name}.{purpose}")


_libc = ctypes.CDLL(None, use_errno=True)
_AT_FDCWD = -100
_RENAME_EXCHANGE = 2


def exchange_folders(first: Path, second: Path) -> None:
    """Swap two folders atomically (Linux renameat2 RENAME_EXCHANGE). Without it (another OS, a
    file system that lacks it): two renames through `.NAME.old`, undone if the second fails;
    a crash between them is undone by the next run of the trial (undo_interrupted_swap)."""
    renameat2 = getattr(_libc, "renameat2", None)
    if renameat2 is not None:
        done = renameat2(_AT_FDCWD, os.fsencode(first), _AT_FDCWD, os.fsencode(second), _RENAME_EXCHANGE)
        if done == 0:
            sync_folder(second.parent)
            return
        code = ctypes.get_errno()
        if code not in (errno.ENOSYS, errno.EINVAL, errno.EOPNOTSUPP):
            raise OSError(code, os.strerror(code), str(second))
    aside = beside(second, "old")
    os.rename(second, aside)
    try:
        os.rename(first, second)
    except BaseException:
        os.rename(aside, second)
        raise
    os.rename(aside, first)  # as after an exchange: the old folder where the new one was
    sync_folder(second.parent)


def undo_interrupted_swap(directory: Path) -> None:
    """A crash between the two renames of exchange_folders' fallback left the trial's old folder
    aside: put it back."""
    aside = beside(directory, "old")
    if not directory.exists() and aside.is_dir():
        os.rename(aside, directory)


def sync_folder(folder: Path) -> None:
    """fsync a folder, so a rename in it survives a power cut."""
    fd = os.open(folder, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _float_or_special(value: Any) -> Any:
    if value in ("inf", "-inf", "nan"):
        return float(value)
    return value


def read_record(path: str | Path) -> dict[str, Any]:
    path = Path(path)
    try:
        with open(path) as f:
            raw = json.load(f)
    except json.JSONDecodeError as e:
        raise AlgoperfError(
            f"{path} is damaged ({e}). Delete its trial folder and re-run the sweep to redo it."
        ) from None
    if not isinstance(raw, dict):
        raise AlgoperfError(f"{path} is not a trial record (expected a JSON object).")
    return {k: _float_or_special(v) for k, v in raw.items()}


SUBMISSION_METRICS_NAME = "submission_metrics.csv"


def append_submission_metrics(directory: Path, rows: list[tuple[int, str, float]]) -> None:
    """Append (step, name, value) rows that a submission logged (informational, unsigned, never
    scored) to the trial's submission_metrics.csv."""
    path = Path(directory) / SUBMISSION_METRICS_NAME
    new = not path.exists()
    with open(path, "a", newline="") as f:
        writer = csv.writer(f)
        if new:
            writer.writerow(["step", "name", "value"])
        writer.writerows(rows)


class EvalLog:
    """Appends one row per eval to evals.csv, flushed at once so a crash keeps earlier rows.

    The columns are EVAL_FIELDS, then any `plugin.<name>` a submission's `diagnostics` reports,
    in the order first seen; a new name rewrites the file (atomically) with the wider header.
    """

    def __init__(self, directory: str | Path):
        self.path = Path(directory) / EVALS_NAME
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self.fields = list(EVAL_FIELDS)
        self.rows: list[dict[str, Any]] = []
        self._file = open(self.path, "w", newline="")
        self._writer = self._start(self._file)

    def _start(self, file: Any) -> csv.DictWriter:
        writer = csv.DictWriter(file, fieldnames=self.fields)
        writer.writeheader()
        file.flush()
        return writer

    def append(self, row: dict[str, Any]) -> None:
        self.rows.append(row)
        new = [k for k in row if k.startswith(PLUGIN_PREFIX) and k not in self.fields]
        if new:
            self.fields += new
            self._file.close()
            temporary = self.path.with_name(self.path.name + ".tmp")
            with open(temporary, "w", newline="") as f:
                writer = self._start(f)
                writer.writerows({k: r.get(k, "") for k in self.fields} for r in self.rows)
            os.replace(temporary, self.path)
            self._file = open(self.path, "a", newline="")
            self._writer = csv.DictWriter(self._file, fieldnames=self.fields)
            return
        self._writer.writerow({k: row.get(k, "") for k in self.fields})
        self._file.flush()

    def close(self) -> None:
        self._file.close()


@dataclass
class Results:
    """Tidy frames: one row per trial, one row per eval (with the trial's keys).

    Only valid records are in the frames. `invalid` names, one line each, every record left
    out because it is unreadable, malformed, inconsistent, filed in the wrong folder, recorded
    twice, or disagrees with its evals.csv: "<record path>: <what is wrong>".
    """

    trials: pd.DataFrame
    evals: pd.DataFrame
    invalid: list[str] = field(default_factory=list)
    # "<record path>: <reason>" per record failing its signature or evals.csv check; those are
    # left out of trials/evals unless loaded with trust_unsigned.
    bad_signatures: list[str] = field(default_factory=list)


TRIAL_KEYS = TrialKey._fields


def _record_dirs(root: Path) -> list[str]:
    """Every folder under `root` holding a record.json, sorted, hidden folders (an overwrite's
    staging folder, .hydra) excepted. Plain strings and os.walk: pathlib objects cost more than
    the reading itself at 10k trials."""
    found = []
    for directory, subdirectories, files in os.walk(root):
        subdirectories[:] = sorted(d for d in subdirectories if not d.startswith("."))
        if RECORD_NAME in files:
            found.append(directory)
    return sorted(found)


def _load_raw(path: str) -> tuple[dict[str, Any], bool]:
    """The record as stored (inf/nan still strings, as signed) and whether it holds any.

    read_record without its per-call overheads (they add up over 10k records), and the same
    AlgoperfError for a damaged file (read_record raises it).
    """
    with open(path, "rb") as f:
        text = f.read()
    try:
        raw = json.loads(text)
    except ValueError:  # JSONDecodeError, or bytes that are not text
        return read_record(path), False
    if not isinstance(raw, dict):
        return read_record(path), False
    return raw, b'"inf"' in text or b'"-inf"' in text or b'"nan"' in text


def _read_bytes(path: str) -> bytes | None:
    try:
        with open(path, "rb") as f:
            return f.read()
    except FileNotFoundError:
        return None


def _decode_csv(data: bytes) -> str:
    """The text that open() in text mode gives: universal newlines (EvalLog writes CRLF)."""
    text = data.decode(errors="replace")
    if "\r" in text:
        text = text.replace("\r\n", "\n").replace("\r", "\n")
    return text


def _record_problem(
    body: dict[str, Any], signature: Any, key: bytes | None, evals: bytes | None
) -> str | None:
    """Why a stored record (its signature taken out) cannot be trusted: its signature, or its
    evals.csv since; None when it can."""
    if key is not None:
        problem = body_signature_problem(body, signature, key)
    elif isinstance(signature, dict):  # no key on this machine: signed elsewhere
        problem = f"signed with another key (key_id {signature.get('key_id')})"
    else:
        problem = "unsigned"
    if problem is not None or "evals_sha256" not in body:
        return problem
    recorded = body["evals_sha256"]
    if evals is None:
        return "evals.csv was deleted after the record was written" if recorded else None
    if recorded is None:
        return "evals.csv was added after the record was written"
    if hashlib.sha256(evals).hexdigest() != recorded:
        return "evals.csv changed since the record was written"
    return None


def folder_problem(directory: str, record: dict[str, Any]) -> str | None:
    """Whether a record sits in the folder its own keys name (trial_dir), else what differs."""
    parts = directory.rstrip(os.sep).split(os.sep)[-6:]
    expected = [
        record["sweep"],
        record["submission"],
        record["workload"],
        record["framework"],
        f"study_{record['study']}",
        f"trial_{record['trial']}",
    ]
    if parts == expected:
        return None
    if len(parts) < 6 or not (parts[-2].startswith("study_") and parts[-1].startswith("trial_")):
        return (
            "not in a trial folder (<sweep>/<submission>/<workload>/<framework>/study_<k>/trial_<j>); "
            f"its keys name {'/'.join(expected)}"
        )
    differing = [
        f"{name} {record[name]!r} but filed under {part!r}"
        for name, value, part in zip(TRIAL_KEYS, expected, parts, strict=True)
        if value != part
    ]
    return "the record says " + "; ".join(differing)


def _read_evals(texts: list[tuple[int, str]]) -> tuple[pd.DataFrame, dict[int, str]]:
    """Parse many evals.csv texts at once: one read_csv per distinct header, not one per file.

    `texts` holds (record index, text). Returns one frame with a `record` column (the index),
    and the problems of files that cannot be used: a header lacking columns, unparsable text.
    Per-file pd.read_csv costs ~1 ms, which made loading 10k trials take ~30 s; bodies with
    the same header are joined and parsed together.
    """
    problems: dict[int, str] = {}
    by_header: dict[str, list[tuple[int, str]]] = {}
    for index, text in texts:
        header, _, body = text.partition("\n")
        if body and not body.endswith("\n"):
            body += "\n"
        by_header.setdefault(header.rstrip("\r"), []).append((index, body))
    frames = []
    for header, entries in by_header.items():
        missing = [name for name in EVAL_FIELDS if name not in header.split(",")]
        if missing:
            for index, _ in entries:
                problems[index] = f"evals.csv lacks the column(s) {', '.join(missing)}"
            continue
        bodies = [body for _, body in entries]
        counts = [sum(1 for line in body.splitlines() if line.strip()) for body in bodies]
        try:
            frame = pd.read_csv(io.StringIO(header + "\n" + "".join(bodies)))
            if len(frame) != sum(counts):  # something odd (a quoted newline?): file by file
                raise ValueError
        except (ValueError, pd.errors.ParserError):
            parts = []
            for index, body in entries:
                try:
                    parts.append(pd.read_csv(io.StringIO(header + "\n" + body)))
                except (ValueError, pd.errors.ParserError) as e:
                    problems[index] = f"evals.csv cannot be parsed ({e})"
                    parts.append(pd.DataFrame(columns=list(EVAL_FIELDS)))
            frame = pd.concat(parts, ignore_index=True)
            counts = [len(part) for part in parts]
        frame["record"] = np.repeat([index for index, _ in entries], counts)
        frames.append(frame)
    if not frames:
        return pd.DataFrame(columns=[*EVAL_FIELDS, "record"]), problems
    evals = pd.concat(frames, ignore_index=True) if len(frames) > 1 else frames[0]
    for name in EVAL_FIELDS:  # a stray word in a number column: NaN here, caught by the checks
        if not pd.api.types.is_numeric_dtype(evals[name]):
            evals[name] = pd.to_numeric(evals[name], errors="coerce")
    return evals, problems


# Statuses whose trials ended normally: their eval log must agree with their outcome. A failed
# or timed-out trial's log may stop anywhere, and a rule violation voids an earlier target.
_LOG_MATCHES_OUTCOME = ("reached", "budget_exhausted", "training_complete", "diverged")


def evals_problems(trials: pd.DataFrame, evals: pd.DataFrame) -> dict[int, str]:
    """Records whose outcome their own evals.csv contradicts, by record index (trials.index).

    A reached trial's time and steps are those of its first eval meeting the target within
    the budget; any other trial that ended normally has no such eval; best_validation is the
    best finite validation metric logged; num_evals the number of rows. Vectorised: the checks
    run on whole columns, messages are written only for the records that fail.
    """
    checked = trials[trials["status"].isin(_LOG_MATCHES_OUTCOME)]
    if checked.empty:
        return {}
    rows = evals[evals["record"].isin(checked.index)]
    owner = checked.loc[rows["record"]]
    metric = rows["validation_metric"].to_numpy(float)
    target = pd.to_numeric(owner["target"]).to_numpy(float)
    higher = owner["metric_higher_is_better"].fillna(True).to_numpy(bool)
    budget = pd.to_numeric(owner["max_submission_time_s"]).to_numpy(float)
    finite = np.isfinite(metric)
    with np.errstate(invalid="ignore"):
        meets = finite & np.where(higher, metric >= target, metric <= target)
        meets &= rows["submission_time_s"].to_numpy(float) <= budget
    # per record: rows logged, the first eval meeting the target in budget, the best metric
    count = rows.groupby("record").size().reindex(checked.index, fill_value=0)
    first = rows[meets].groupby("record").first().reindex(checked.index)
    badness = pd.Series(np.where(finite, np.where(higher, -metric, metric), np.inf), index=rows.index)
    best_badness = badness.groupby(rows["record"]).min().reindex(checked.index, fill_value=np.inf)
    higher_per_record = checked["metric_higher_is_better"].fillna(True).to_numpy(bool)
    best = np.where(
        np.isfinite(best_badness), np.where(higher_per_record, -best_badness, best_badness), np.nan
    )

    reached = (checked["status"] == "reached").to_numpy()
    met = first["step"].notna().to_numpy()
    wrong_count = count.to_numpy() != pd.to_numeric(checked["num_evals"]).to_numpy(float)
    wrong_first = (
        reached
        & met
        & (
            (first["step"].to_numpy(float) != pd.to_numeric(checked["steps_to_target"]).to_numpy(float))
            | ~np.isclose(
                first["submission_time_s"].to_numpy(float),
                pd.to_numeric(checked["time_to_target_s"]).to_numpy(float),
                rtol=1e-9,
                atol=1e-9,
            )
        )
    )
    stored_best = pd.to_numeric(checked["best_validation"]).to_numpy(float)
    wrong_best = np.isfinite(best) != np.isfinite(stored_best)
    both = np.isfinite(best) & np.isfinite(stored_best)
    wrong_best[both] |= ~np.isclose(best[both], stored_best[both], rtol=1e-9, atol=1e-12)
    failing = wrong_count | (reached & ~met) | wrong_first | (~reached & met) | wrong_best

    problems: dict[int, str] = {}
    for position in np.flatnonzero(failing):
        record, row = checked.iloc[position], first.iloc[position]
        found = []
        if wrong_count[position]:
            found.append(f"num_evals is {record['num_evals']} but evals.csv has {count.iloc[position]} rows")
        if reached[position] and not met[position]:
            found.append("status 'reached' but no eval in evals.csv meets the target within the budget")
        if wrong_first[position]:
            found.append(
                f"reached at {record['time_to_target_s']:g} s (step {record['steps_to_target']:g}) "
                f"but evals.csv first meets the target at {row['submission_time_s']:g} s "
                f"(step {row['step']:g})"
            )
        if not reached[position] and met[position]:
            found.append(
                f"status {record['status']!r} but evals.csv meets the target within the budget at "
                f"{row['submission_time_s']:g} s (step {row['step']:g})"
            )
        if wrong_best[position]:
            logged = best[position]
            stored = record["best_validation"]
            found.append(f"best_validation is {stored} but the best in evals.csv is {logged}")
        problems[checked.index[position]] = "; ".join(found)
    return problems


def _verification_key() -> bytes | None:
    try:
        return load_key(create=False)
    except MissingKey:
        return None  # nothing was ever signed here: every record is unsigned or foreign


RECORD_FIX = (
    "re-run the trial (delete its folder and re-run the sweep), or move the record out of the results folder"
)


def load(path: str | Path, *, trust_unsigned: bool = False) -> Results:
    """Load every complete trial under `path` (any level of the results tree), checking each.

    Records failing their signature or evals.csv hash are listed in `bad_signatures` and left
    out, unless `trust_unsigned` (then they are checked like the rest and still listed). Every
    record is validated (record.StoredRecord), must sit in the folder its keys name, must be
    the only record of its (sweep, submission, workload, framework, study, trial), and must
    agree with its evals.csv; those that do not are listed in `invalid` and left out.
    """
    path = Path(path)
    if not path.exists():
        raise AlgoperfError(f"results folder {path} does not exist. Run a sweep first, or check the path.")
    key = _verification_key()
    rows: list[dict[str, Any]] = []
    eval_texts: list[tuple[int, str]] = []
    invalid: dict[str, str] = {}  # record path -> what is wrong
    bad_signatures: list[str] = []
    for directory in _record_dirs(path):
        record_path = os.path.join(directory, RECORD_NAME)
        try:
            record, special = _load_raw(record_path)
        except AlgoperfError as e:
            invalid[record_path] = str(e).removeprefix(f"{record_path} ")
            continue
        evals = _read_bytes(os.path.join(directory, EVALS_NAME))
        problem = _record_problem(record, record.pop("signature", None), key, evals)
        if problem is not None:
            bad_signatures.append(f"{record_path}: {problem}")
            if not trust_unsigned:
                continue
        if special:
            record = {k: _float_or_special(v) for k, v in record.items()}
        problems = record_problems(record) or [folder_problem(directory, record)]
        if problems != [None]:
            invalid[record_path] = "; ".join(problems)
            continue
        record["path"] = directory
        if evals is not None:
            eval_texts.append((len(rows), _decode_csv(evals)))
        rows.append(record)
    trials = pd.DataFrame(rows)
    evals_frame, eval_problems = _read_evals(eval_texts)
    if len(trials):
        eval_problems.update(evals_problems(trials.drop(index=list(eval_problems)), evals_frame))
        reached_without_log = trials.index[(trials["status"] == "reached") & trials["evals_sha256"].isna()]
        eval_problems.update(
            {i: "status 'reached' but the trial has no evals.csv" for i in reached_without_log}
        )
        copies = trials[trials.duplicated(list(TRIAL_KEYS), keep=False)]
        for _, group in copies.groupby(list(TRIAL_KEYS), sort=False):
            for index in group.index:
                others = ", ".join(str(p) for p in group["path"] if p != trials.at[index, "path"])
                eval_problems[index] = f"the same trial is also recorded at {others}; keep one"
    for index, problem in eval_problems.items():
        invalid[os.path.join(trials.at[index, "path"], RECORD_NAME)] = problem
    if eval_problems:
        trials = trials.drop(index=list(eval_problems))
        evals_frame = evals_frame[~evals_frame["record"].isin(list(eval_problems))]
    evals_frame = _with_trial_keys(evals_frame, trials)
    if len(trials):
        trials = trials.sort_values(list(TRIAL_KEYS)).reset_index(drop=True)
    return Results(
        trials=trials,
        evals=evals_frame,
        invalid=[f"{p}: {problem}" for p, problem in sorted(invalid.items())],
        bad_signatures=bad_signatures,
    )


def _with_trial_keys(evals: pd.DataFrame, trials: pd.DataFrame) -> pd.DataFrame:
    """The eval rows with their trial's keys in place of the record index."""
    if trials.empty:
        return pd.DataFrame(columns=[*EVAL_FIELDS, *TRIAL_KEYS])
    keys = trials[list(TRIAL_KEYS)]
    positions = evals["record"].to_numpy()
    evals = evals.drop(columns="record").reset_index(drop=True)
    for key in TRIAL_KEYS:
        evals[key] = keys[key].to_numpy()[keys.index.get_indexer(positions)]
    return evals


INVALID_FIX = (
    "re-run those trials (delete their folders and re-run the sweep), move records filed in the "
    "wrong place back or out of the results folder, and delete copies; or pass --skip-invalid to "
    "score the rest (the report then lists what was left out)"
)


def refuse_invalid(loaded: Results) -> None:
    """Raise AlgoperfError naming every invalid record, if any."""
    verb = "valid, so the folder is not scored:"
    _refuse(loaded.invalid, (f"is not {verb}", f"are not {verb}"), INVALID_FIX)


def _refuse(lines: list[str], verb: tuple[str, str], fix: str) -> None:
    """Raise AlgoperfError: how many records (`verb`: singular, plural), each line, the fix."""
    if not lines:
        return
    count = len(lines)
    head = f"{count} trial record{' ' + verb[0] if count == 1 else 's ' + verb[1]}"
    raise AlgoperfError("\n".join([head, *(f"  {line}" for line in lines), f"Fix: {fix}."]))


TRUST_FIX = (
    "re-run those trials (delete their trial folders and re-run the sweep), or, for records made "
    "on another machine, point ALGOPERF_KEY_FILE at that machine's key; --trust-unsigned scores "
    "them anyway and marks the report as unverified"
)


def refuse_untrusted(loaded: Results) -> None:
    """Raise AlgoperfError naming every record that failed its signature check, if any did."""
    verb = (
        "the signature check (edited after being written, or signed elsewhere), so the folder is not scored:"
    )
    _refuse(loaded.bad_signatures, (f"fails {verb}", f"fail {verb}"), TRUST_FIX)


def write_failure_record(
    directory: str | Path, cfg: RunConfig, submission: str, error: str, status: str = "failed"
) -> Path:
    """Record a trial whose process died before writing its own record (crash, kill, OOM)."""
    from algoperf.hardware import fingerprint
    from algoperf.provenance import software_versions

    record = TrialRecord(
        sweep=cfg.sweep,
        workload=cfg.workload,
        framework=cfg.framework,
        submission=submission,
        ruleset=cfg.ruleset.name,
        hardware_profile=cfg.hardware.name,
        study=cfg.study,
        trial=cfg.trial or 0,
        status=status,
        hardware=fingerprint(),
        software=software_versions(cfg.framework),
        error=error,
        **_settings_of(cfg),
    )
    record.ended_at = record.started_at
    return write_record(directory, record.to_dict())


def _settings_of(cfg: RunConfig) -> dict[str, Any]:
    """A failure record's settings: the run configuration's, and the budget and eval schedule
    its hardware profile gives the workload."""
    from algoperf.hardware import workload_settings

    settings = {"root_seed": cfg.seed, "max_steps": cfg.max_steps, "stop_at_target": cfg.stop_at_target}
    if cfg.workload not in cfg.hardware.workloads:
        return settings
    profile = workload_settings(cfg.hardware, cfg.workload, cfg.framework)
    every = cfg.eval_every_steps
    budget = cfg.ruleset.budget_s(profile.max_submission_time_s, cfg.max_submission_time_s)
    return {
        **settings,
        "max_submission_time_s": budget,
        "eval_every_steps": every or profile.eval_every_steps,
        "eval_period_s": None if every else profile.eval_period_s,
    }
