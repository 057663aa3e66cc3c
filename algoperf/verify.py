"""`algoperf score --verify`: does each record still match the code it claims to have measured?"""

from __future__ import annotations

from pathlib import Path

from algoperf.plugins import file_sha256, list_workloads, workload_source_sha256
from algoperf.results import load


def verify_records(results_dir: str | Path) -> bool:
    """Print one line per record whose submission or workload source changed; True if none."""
    trials = load(results_dir).trials
    workloads = list_workloads()
    workload_hashes: dict[str, str | None] = {}
    mismatches = []
    for _, record in trials.iterrows():
        where = (
            f"{record['submission']}/{record['workload']}/{record['framework']} "
            f"study {record['study']} trial {record['trial']}"
        )
        path = record.get("submission_path")
        if isinstance(path, str) and record.get("submission_sha256"):
            if not Path(path).is_file():
                mismatches.append(f"{where}: submission file {path} no longer exists")
            elif file_sha256(Path(path)) != record["submission_sha256"]:
                mismatches.append(f"{where}: {path} changed since the trial ran")
        name = record["workload"]
        if name not in workload_hashes:
            workload_hashes[name] = workload_source_sha256(name) if name in workloads else None
        if record.get("workload_sha256") and workload_hashes[name] != record["workload_sha256"]:
            mismatches.append(f"{where}: workload {name!r} code changed since the trial ran")
    if mismatches:
        print(
            f"verify: {len(mismatches)} of {len(trials)} records do not match the current code "
            "(re-run those trials, or score the code they measured):"
        )
        for line in mismatches:
            print("  " + line)
        return False
    print(f"verify: all {len(trials)} records match the current submission and workload code")
    return True
