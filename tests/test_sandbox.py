"""The worker's confinement on its own: Landlock, the unprivileged user, process-group escapes."""

import os
import subprocess
import sys
import textwrap

import pytest

from algoperf import sandbox

needs_landlock = pytest.mark.skipif(sandbox.landlock_abi() < 1, reason="this kernel has no Landlock")


def run_confined(tmp_path, code: str) -> subprocess.CompletedProcess:
    """Run `code` in a fresh interpreter after landlock_restrict(hidden=[tmp/hidden], writable=[tmp/mine])."""
    script = textwrap.dedent(
        f"""
        from pathlib import Path
        from algoperf.sandbox import landlock_restrict
        landlock_restrict([Path({str(tmp_path / "hidden")!r})], [Path({str(tmp_path / "mine")!r})])
        """
    ) + textwrap.dedent(code)
    return subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=120)


@needs_landlock
def test_landlock_hides_folders_and_limits_writes(tmp_path):
    (tmp_path / "hidden").mkdir()
    (tmp_path / "hidden" / "secret.txt").write_text("labels")
    (tmp_path / "mine").mkdir()
    (tmp_path / "public.txt").write_text("ok")
    result = run_confined(
        tmp_path,
        f"""
        def attempt(action):
            try:
                action()
                return "allowed"
            except PermissionError:
                return "denied"
        print(attempt(lambda: open({str(tmp_path / "hidden" / "secret.txt")!r}).read()))
        print(attempt(lambda: open({str(tmp_path / "public.txt")!r}).read()))
        print(attempt(lambda: open({str(tmp_path / "elsewhere.txt")!r}, "w").write("x")))
        print(attempt(lambda: open({str(tmp_path / "mine" / "scratch.txt")!r}, "w").write("x")))
        print(attempt(lambda: open({str(tmp_path / "public.txt")!r}, "a").write("x")))
        """,
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.split() == ["denied", "allowed", "denied", "allowed", "denied"]
    assert (tmp_path / "public.txt").read_text() == "ok"


@pytest.mark.skipif(sandbox.landlock_abi() < 6, reason="signal scoping needs Landlock ABI 6")
def test_landlock_stops_signals_to_the_supervisor(tmp_path):
    (tmp_path / "mine").mkdir()
    result = run_confined(
        tmp_path,
        """
        import os, signal
        try:
            os.kill(os.getppid(), signal.SIGSTOP)
            print("sent")
        except PermissionError:
            print("denied")
        """,
    )
    assert result.stdout.strip() == "denied", result.stderr


def test_unprivileged_user_only_as_root_and_only_when_the_harness_is_readable(monkeypatch):
    import shutil
    import tempfile
    from pathlib import Path

    root = Path(tempfile.mkdtemp(prefix="algoperf-sandbox-test-"))  # not pytest's 0700 tmp_path
    try:
        root.chmod(0o755)
        readable = root / "open"
        readable.mkdir(mode=0o755)
        private = root / "closed"
        private.mkdir(mode=0o700)
        monkeypatch.setattr(os, "geteuid", lambda: 0)
        assert sandbox.unprivileged_user([readable]) is not None
        assert sandbox.unprivileged_user([readable, private]) is None
        monkeypatch.setattr(os, "geteuid", lambda: 1000)
        assert sandbox.unprivileged_user([readable]) is None
    finally:
        shutil.rmtree(root)


def test_escaped_processes_are_found_and_killed():
    """A child that leaves the group (setsid) is reported; kill() reaches it too."""
    sandbox.become_subreaper()
    worker = subprocess.Popen(
        [
            sys.executable,
            "-c",
            "import os, time\n"
            "if os.fork() == 0:\n"
            "    os.setsid()\n"
            "    if os.fork() == 0:\n"
            "        time.sleep(60)\n"
            "    os._exit(0)\n"
            "time.sleep(60)\n",
        ],
        start_new_session=True,
    )
    group = sandbox.WorkerGroup(worker.pid, sandbox.children_of(os.getpid()) - {worker.pid})
    import time

    deadline = time.monotonic() + 10
    while not group.escaped() and time.monotonic() < deadline:
        time.sleep(0.05)
    escaped = group.escaped()
    assert escaped, "the double-forked, setsid grandchild must be seen"
    group.freeze()
    group.kill()
    worker.wait()
    # SIGKILLed, each dies as soon as the kernel runs it: polled, not a fixed sleep.
    deadline = time.monotonic() + 30
    while not all(sandbox.is_zombie(pid) for pid in escaped) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert all(sandbox.is_zombie(pid) for pid in escaped)
