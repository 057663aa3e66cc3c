"""Trials of a sweep's job processes are forked from the job process (warm: the frameworks are
already imported) instead of started in a fresh interpreter. The watchdog must treat a forked
trial exactly as a started one: its output in the log, its own environment, its exit code, and
the wall-time limit."""

import os
import sys
import time

from algoperf.watchdog import Limits, run_watched


def test_a_forked_child_logs_gets_its_environment_and_exits_with_mains_code(tmp_path):
    def main() -> int:
        print("hello from", os.environ["ALGOPERF_TEST_VALUE"])
        print("on stderr too", file=sys.stderr)
        return 3

    log = tmp_path / "trial.log"
    env = {**os.environ, "ALGOPERF_TEST_VALUE": "the child"}
    outcome = run_watched(main, log, Limits(None, None), env=env)
    assert outcome.returncode == 3 and outcome.killed_for is None
    assert "hello from the child" in log.read_text() and "on stderr too" in log.read_text()
    assert "ALGOPERF_TEST_VALUE" not in os.environ  # the parent's environment is untouched


def test_an_exception_or_exit_in_the_child_is_its_exit_code_with_the_traceback_logged(tmp_path):
    def crash() -> int:
        raise RuntimeError("broken trial")

    def leave() -> int:
        sys.exit(7)

    log = tmp_path / "trial.log"
    assert run_watched(crash, log, Limits(None, None), env=dict(os.environ)).returncode == 1
    assert "RuntimeError: broken trial" in log.read_text()
    assert run_watched(leave, log, Limits(None, None), env=dict(os.environ)).returncode == 7


def test_a_forked_child_that_hangs_is_killed_at_the_wall_time_limit(tmp_path):
    def hang() -> int:
        time.sleep(60)
        return 0

    start = time.monotonic()
    outcome = run_watched(hang, tmp_path / "trial.log", Limits(0.5, None), env=dict(os.environ), poll_s=0.05)
    assert outcome.killed_for == "timeout" and outcome.returncode == -9
    assert time.monotonic() - start < 10
