"""`algoperf score --verify`: does each record still match the code it claims to have measured,
and is it the record the harness wrote (its signature)?"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from algoperf.errors import AlgoperfError
from algoperf.identity import changed_files, submission_identity
from algoperf.plugins import list_workloads, workload_source_sha256
from algoperf.results import TRUST_FIX, load


def verify_records(results_dir: str | Path, trust_unsigned: bool = False) -> bool:
    """Print one line per record whose submission or workload code changed, and one per record
    failing its signature check (a note only, with `trust_unsigned`); True if none."""
    loaded = load(results_dir, trust_unsigned=True)  # check the code of every record, trusted or not
    trials = loaded.trials
    total = len(trials) + len(loaded.invalid)  # invalid ones too: they are records on disk
    workloads = list_workloads()
    workload_hashes: dict[str, str | None] = {}
    identities: dict[str, dict[str, Any] | str | None] = {}  # folder -> identity, error, or None
    mismatches = []
    for _, record in trials.iterrows():
        where = (
            f"{record['submission']}/{record['workload']}/{record['framework']} "
            f"study {record['study']} trial {record['trial']}"
        )
        problem = _submission_problem(record, identities)
        if problem:
            mismatches.append(f"{where}: {problem}")
        name = record["workload"]
        if name not in workload_hashes:
            workload_hashes[name] = workload_source_sha256(name) if name in workloads else None
        if record.get("workload_sha256") and workload_hashes[name] != record["workload_sha256"]:
            mismatches.append(f"{where}: workload {name!r} code changed since the trial ran")
    if mismatches:
        print(
            f"verify: {len(mismatches)} of {total} records do not match the current code "
            "(re-run those trials, or score the code they measured):"
        )
        for line in mismatches:
            print("  " + line)
    bad = loaded.bad_signatures
    if bad:
        trusted = " (scored anyway: --trust-unsigned)" if trust_unsigned else ""
        print(f"verify: {len(bad)} of {total} records fail the signature check{trusted}:")
        for line in bad:
            print("  " + line)
        if not trust_unsigned:
            print(f"  fix: {TRUST_FIX}")
    if mismatches or (bad and not trust_unsigned):
        return False
    print(f"verify: all {total} records match the current submission and workload code")
    return True


def _submission_problem(record: Any, identities: dict[str, dict[str, Any] | str | None]) -> str | None:
    """What changed in the record's submission since its trial ran, or None."""
    folder = record.get("submission_folder")
    if isinstance(folder, str) and folder:
        if folder not in identities:  # one hash of each folder, however many records share it
            identities[folder] = _identity_now(Path(folder))
        now = identities[folder]
        if now is None:
            return f"submission folder {folder} no longer exists"
        if isinstance(now, str):
            return now
        recorded = record.get("submission_files")
        if isinstance(recorded, dict) and recorded:
            changes = changed_files(recorded, now["files"])
            return f"{', '.join(changes)} since the trial ran (in {folder})" if changes else None
        if now["tree_sha256"] != record.get("submission_sha256"):
            return f"the files of {folder} changed since the trial ran"
        return None
    return None  # a failure record written before the trial knew its folder


def _identity_now(folder: Path) -> dict[str, Any] | str | None:
    """The folder's identity now; None when it is gone, the reason when it cannot be hashed."""
    if not folder.is_dir():
        return None
    try:
        return submission_identity(folder)
    except AlgoperfError as e:
        return str(e)
