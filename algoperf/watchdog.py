"""Runs one trial process under a watchdog: a wall-clock limit and a memory limit.

The runner checks the budget after every step, but a step that never returns (a hang, a
deadlock) or that allocates without bound can only be stopped from outside the process.
"""

from __future__ import annotations

import os
import signal
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class Limits:
    wall_time_s: float | None  # kill after this long (status `timeout`)
    memory_gib: float | None  # kill when the trial's process tree holds more (status `failed`)


@dataclass(frozen=True)
class Outcome:
    returncode: int
    killed_for: str | None  # None, "timeout" or "memory"
    detail: str = ""


def _children(pid: int) -> list[int]:
    try:
        with open(f"/proc/{pid}/task/{pid}/children") as f:
            return [int(p) for p in f.read().split()]
    except OSError:
        return []


def tree_rss_bytes(pid: int) -> int:
    """Resident memory of a process and all its descendants (Linux /proc)."""
    total, stack = 0, [pid]
    while stack:
        current = stack.pop()
        try:
            with open(f"/proc/{current}/statm") as f:
                total += int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")
        except OSError:
            continue
        stack.extend(_children(current))
    return total


def run_watched(
    command: list[str],
    log_path: Path,
    limits: Limits,
    env: dict[str, str],
    preexec_fn=None,
    poll_s: float = 0.25,
) -> Outcome:
    start = time.monotonic()
    # Append: a trial another live sweep holds (the child then exits at once) keeps its log.
    with open(log_path, "a") as log:
        child = subprocess.Popen(
            command, stdout=log, stderr=subprocess.STDOUT, env=env, preexec_fn=preexec_fn
        )
        try:
            while child.poll() is None:
                elapsed = time.monotonic() - start
                if limits.wall_time_s is not None and elapsed > limits.wall_time_s:
                    child.send_signal(signal.SIGKILL)
                    child.wait()
                    return Outcome(
                        child.returncode,
                        "timeout",
                        f"no result after {elapsed:.0f} s of wall time (limit {limits.wall_time_s:.0f} s)",
                    )
                if limits.memory_gib is not None:
                    rss_gib = tree_rss_bytes(child.pid) / 2**30
                    if rss_gib > limits.memory_gib:
                        child.send_signal(signal.SIGKILL)
                        child.wait()
                        return Outcome(
                            child.returncode,
                            "memory",
                            f"memory limit exceeded: the trial held {rss_gib:.2f} GiB "
                            f"(limit {limits.memory_gib:.2f} GiB)",
                        )
                time.sleep(poll_s)
        except BaseException:
            child.kill()
            child.wait()
            raise
    return Outcome(child.returncode, None)
