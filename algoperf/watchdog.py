"""Runs one trial process under a watchdog: a wall-clock limit and a memory limit.

The runner checks the budget after every step, but a step that never returns (a hang, a
deadlock) or that allocates without bound can only be stopped from outside the process.

Also the ties between a sweep's processes (main process -> job process -> trial process), so
that none outlives the one it serves: a job process whose sweep died kills its trial and exits
(`exit_with_sweep`), and a trial whose job process died records that and ends
(`fail_trial_when_job_dies`).
"""

from __future__ import annotations

import ctypes
import io
import os
import signal
import subprocess
import sys
import threading
import time
import traceback
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from algoperf.sandbox import descendants_of, is_alive

PR_SET_PDEATHSIG = 1
# Resolved at import, never in a forked child: an import between fork and exec can deadlock on
# a lock another thread of the parent held at the fork.
_prctl = ctypes.CDLL(None, use_errno=True).prctl

# Environment of a sweep's processes: the sweep's main process, and (in a trial process) the
# job process that started it.
SWEEP_PID_ENV = "ALGOPERF_SWEEP_PID"
SWEEP_JOB_ENV = "ALGOPERF_SWEEP_JOB"


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
    command: list[str] | Callable[[], int],
    log_path: Path,
    limits: Limits,
    env: dict[str, str],
    preexec_fn=None,
    poll_s: float = 0.25,
) -> Outcome:
    """Run `command` (an argv, or a function to run in a forked child: see `fork_child`) with
    its output appended to `log_path`, until it ends or a limit kills it."""
    start = time.monotonic()
    # Append: a trial another live sweep holds (the child then exits at once) keeps its log.
    with open(log_path, "a") as log:
        with _children_lock:
            if callable(command):
                child: subprocess.Popen | ForkedChild = fork_child(command, log.fileno(), env, preexec_fn)
            else:
                child = subprocess.Popen(
                    command, stdout=log, stderr=subprocess.STDOUT, env=env, preexec_fn=preexec_fn
                )
            _live_children.add(child)
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
        finally:
            with _children_lock:
                _live_children.discard(child)
    return Outcome(child.returncode, None)


class ForkedChild:
    """A child forked from this process, with the part of subprocess.Popen's interface the
    watchdog and the sweep use."""

    def __init__(self, pid: int):
        self.pid = pid
        self.returncode: int | None = None

    def poll(self) -> int | None:
        if self.returncode is None:
            done, status = os.waitpid(self.pid, os.WNOHANG)
            if done:
                self.returncode = os.waitstatus_to_exitcode(status)
        return self.returncode

    def wait(self) -> int:
        if self.returncode is None:
            _, status = os.waitpid(self.pid, 0)
            self.returncode = os.waitstatus_to_exitcode(status)
        return self.returncode

    def send_signal(self, sig: int) -> None:
        if self.returncode is None:
            os.kill(self.pid, sig)

    def kill(self) -> None:
        self.send_signal(signal.SIGKILL)


def fork_child(
    main: Callable[[], int], log_fd: int, env: dict[str, str], preexec_fn: Callable[[], None] | None
) -> ForkedChild:
    """Run `main()` in a child forked from this process, as a fresh process running it would:
    its output to `log_fd`, `env` as its environment, default signal handlers; it exits with
    main's return value (through os._exit: nothing of this process's is cleaned up twice).

    A fork skips what a fresh interpreter pays again for every trial (starting Python, importing
    torch or JAX, the harness and Hydra: about 3 s of CPU per trial on the 2-core machine). Only
    a process that has imported modules and run no trial may fork one: the child must not
    inherit another trial's memory, threads or compiled state."""
    for stream in (sys.stdout, sys.stderr):
        stream.flush()
    pid = os.fork()
    if pid:
        return ForkedChild(pid)
    code = 1
    try:
        if preexec_fn is not None:
            preexec_fn()
        os.dup2(log_fd, 1)
        os.dup2(log_fd, 2)
        os.environ.clear()
        os.environ.update(env)
        for sig in (signal.SIGTERM, signal.SIGHUP, signal.SIGQUIT, signal.SIGCHLD, signal.SIGPIPE):
            signal.signal(sig, signal.SIG_DFL)
        signal.signal(signal.SIGINT, signal.default_int_handler)
        # Fresh streams on the log (this process's sys.stdout may be anything, e.g. a capture).
        sys.stdout, sys.stderr = (
            io.TextIOWrapper(io.FileIO(fd, "w", closefd=False), line_buffering=True, write_through=True)
            for fd in (1, 2)
        )
        code = main()
    except SystemExit as e:
        code = e.code if isinstance(e.code, int) else (0 if e.code is None else 1)
    except BaseException:
        traceback.print_exc()
    finally:
        for stream in (sys.stdout, sys.stderr):
            try:
                stream.flush()
            except (OSError, ValueError):
                pass
        os._exit(code if isinstance(code, int) else 1)


# ---- the ties between a sweep's processes -------------------------------------------------------

_live_children: set[subprocess.Popen | ForkedChild] = set()  # trial processes this process runs now
_children_lock = threading.Lock()
_sweep_watcher: threading.Thread | None = None


def die_with_parent(sig: signal.Signals) -> Callable[[], None]:
    """A preexec_fn: the child gets `sig` when this process dies (Linux PR_SET_PDEATHSIG)."""
    parent = os.getpid()

    def preexec() -> None:
        _prctl(PR_SET_PDEATHSIG, int(sig), 0, 0, 0)
        if os.getppid() != parent:  # the parent died before the line above took effect
            os._exit(1)

    return preexec


def kill_tree(pid: int) -> None:
    """SIGKILL a process, then all its descendants (a trial's worker is in a session of its own,
    so a process group or session kill would miss it). The process first: it must not see its
    children die and act on it. The caller's own process last, if it is in the tree."""
    tree = [pid, *descendants_of(pid)]
    for target in sorted(tree, key=lambda p: p == os.getpid()):
        try:
            os.kill(target, signal.SIGKILL)
        except (ProcessLookupError, PermissionError):
            pass


def sweep_job_process() -> bool:
    """Whether this process is a job process of a sweep on this host: a launcher worker that
    the sweep's main process started (not the main process itself, nor a cluster job)."""
    sweep_pid = int(os.environ.get(SWEEP_PID_ENV) or 0)
    return sweep_pid not in (0, os.getpid()) and os.getppid() == sweep_pid


def exit_with_sweep(poll_s: float = 0.5) -> None:
    """In a job process of a sweep (a launcher's worker, e.g. joblib's): once the sweep's main
    process is gone, kill the trial running here, with SIGKILL (no failure record: an
    interrupted sweep resumes), and exit.

    Launcher workers otherwise outlive a killed sweep by minutes (loky waits 300 s for work),
    and keep its resource trackers alive, whose pipes they hold. Started once per process; does
    nothing where the job runs in the main process itself or on another host (SLURM)."""
    global _sweep_watcher
    if _sweep_watcher is not None or not sweep_job_process():
        return
    sweep_pid = os.getppid()

    def watch() -> None:
        while os.getppid() == sweep_pid:  # an orphan is re-parented: the sweep is gone
            time.sleep(poll_s)
        with _children_lock:  # also holds back a trial about to start
            for child in _live_children:
                kill_tree(child.pid)
            # At once: this process's main thread must not see its trial killed and record that
            # as a failure. (A pending SIGKILL wins over the SIGTERM the trial gets next.)
            os._exit(1)

    _sweep_watcher = threading.Thread(target=watch, name="algoperf-exit-with-sweep", daemon=True)
    _sweep_watcher.start()


class JobProcessDied(Exception):
    """The sweep's job process that started this trial died while it ran."""


def fail_trial_when_job_dies(settle_s: float = 2.0) -> None:
    """In a trial process started by a sweep's job process: when that job process dies (killed,
    out of memory), the trial gets SIGTERM (its parent-death signal) and this turns it into
    JobProcessDied, so the trial stops its worker and records why, and the sweep does not run
    it again. If the sweep's main process died too, the sweep was interrupted as a whole: the
    trial ends without a record so that a re-run resumes it."""
    job_pid = int(os.environ.get(SWEEP_JOB_ENV) or 0)
    if not job_pid:
        return
    if os.getppid() != job_pid:  # it died before we got here: leave the trial to the re-run
        os._exit(1)
    handled = False

    def on_sigterm(signum: int, frame: object) -> None:
        nonlocal handled
        # The parent-death signal comes each time the job's thread that is our parent exits,
        # so a dying job sends several, some while its other threads still live: one is enough.
        if handled:
            return
        handled = True
        # The job has died once its last thread is gone and we are re-parented. A job still our
        # parent after settle_s did not die: someone else sent SIGTERM.
        deadline = time.monotonic() + settle_s
        while os.getppid() == job_pid and time.monotonic() < deadline:
            time.sleep(0.01)
        if os.getppid() == job_pid:
            signal.signal(signal.SIGTERM, signal.SIG_DFL)
            os.kill(os.getpid(), signal.SIGTERM)  # end as SIGTERM would have
            return
        if not is_alive(int(os.environ.get(SWEEP_PID_ENV) or 0)):
            kill_tree(os.getpid())  # the whole sweep is gone: no record, the re-run resumes
        raise JobProcessDied(f"the sweep's job process (pid {job_pid}) died while this trial ran")

    signal.signal(signal.SIGTERM, on_sigterm)
