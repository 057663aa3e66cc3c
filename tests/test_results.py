"""The record schema and atomic writes."""

import json
import math
import os
import socket
import subprocess
import sys

import pytest

from algoperf import results
from algoperf.errors import AlgoperfError
from algoperf.record import TrialRecord


def full_record(**overrides):
    """A valid record of a failed trial (no eval log needed), fields as TrialRecord fills them."""
    record = TrialRecord(
        sweep="s", workload="w", framework="torch", submission="a", ruleset="external", study=0, trial=0
    ).to_dict()
    record.update(hparams={"lr": 0.1}, error="crashed")
    record.update(overrides)
    return record


def trial_folder(root, record):
    """Where the store files `record`."""
    return results.trial_dir(root, results.TrialKey(*(record[k] for k in results.TRIAL_KEYS)))


def test_write_and_read_round_trip_with_infinities(tmp_path):
    record = full_record(best_validation=float("inf"), time_to_target_s=1.5)
    path = results.write_record(tmp_path, record)
    text = path.read_text()
    json.loads(text)  # standard JSON: no bare Infinity
    assert "Infinity" not in text
    back = results.read_record(path)
    assert math.isinf(back["best_validation"]) and back["time_to_target_s"] == 1.5


def test_record_lacking_a_field_is_refused(tmp_path):
    record = full_record()
    del record["seed"]
    with pytest.raises(ValueError, match="seed"):
        results.write_record(tmp_path, record)
    assert not (tmp_path / "record.json").exists()


def test_failed_write_leaves_no_partial_record(tmp_path):
    record = full_record(hparams={"bad": object()})  # not JSON-serialisable
    with pytest.raises(TypeError):
        results.write_record(tmp_path, record)
    assert list(tmp_path.iterdir()) == []


def test_damaged_and_old_records_are_listed_as_invalid_with_a_reason(tmp_path):
    ok, bad, old = full_record(), full_record(trial=1), full_record(trial=2, schema_version=0)
    results.write_record(trial_folder(tmp_path, ok), ok)
    trial_folder(tmp_path, bad).mkdir(parents=True)
    (trial_folder(tmp_path, bad) / "record.json").write_text("{not json")
    results.write_record(trial_folder(tmp_path, old), old)
    loaded = results.load(tmp_path)
    assert len(loaded.trials) == 1
    assert any("trial_1/record.json: is damaged" in s for s in loaded.invalid)
    assert any("trial_2/record.json: schema_version: input should be 3 (got 0)" in s for s in loaded.invalid)


def test_missing_folder_is_a_clear_error(tmp_path):
    with pytest.raises(AlgoperfError, match="does not exist"):
        results.load(tmp_path / "nope")


def test_running_marker_counts_only_while_its_process_lives(tmp_path):
    """A claim marks its trial running; a marker left by a killed process does not count."""
    with results.claim(tmp_path):
        assert results.is_running(tmp_path)
    assert not results.is_running(tmp_path)  # removed on exit
    child = [sys.executable, "-c", "import os; print(os.getpid())"]
    dead = subprocess.run(child, capture_output=True, text=True, check=True)
    (tmp_path / results.RUNNING_NAME).write_text(f"{socket.gethostname()} {dead.stdout.strip()}")
    assert not results.is_running(tmp_path)  # stale: that process is gone (SIGKILL leaves the file)
    (tmp_path / results.RUNNING_NAME).write_text(f"{socket.gethostname()} {os.getpid()}")
    assert results.is_running(tmp_path)
    (tmp_path / results.RUNNING_NAME).write_text("another-node 1")
    assert results.is_running(tmp_path)  # another host's process cannot be checked: trusted
