"""Confinement of a trial's worker process (Linux): its own process group that the supervisor
freezes, escape detection, an unprivileged user when the harness runs as root, and a Landlock
file-system sandbox that hides the results tree, the signing key and the datasets.

The supervisor decides the confinement (`Confinement`); the worker applies it to itself
(`confine_self`) before it imports any submission code.
"""

from __future__ import annotations

import ctypes
import os
import pwd
import signal
import stat
import sys
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

PR_SET_PDEATHSIG = 1
PR_SET_NO_NEW_PRIVS = 38
PR_SET_CHILD_SUBREAPER = 36

_libc = ctypes.CDLL(None, use_errno=True)


def _prctl(option: int, value: int) -> bool:
    return _libc.prctl(option, ctypes.c_ulong(value), 0, 0, 0) == 0


# ---- the supervisor's side ----------------------------------------------------------------------


def become_subreaper() -> bool:
    """Orphans of the worker (a double fork) are re-parented to this process instead of init,
    so they stay visible as its descendants."""
    return _prctl(PR_SET_CHILD_SUBREAPER, 1)


def children_of(pid: int) -> set[int]:
    """Direct children of a process, over all its threads (a thread may fork too)."""
    found: set[int] = set()
    try:
        tasks = os.listdir(f"/proc/{pid}/task")
    except OSError:
        return found
    for tid in tasks:
        try:
            with open(f"/proc/{pid}/task/{tid}/children") as f:
                found.update(int(p) for p in f.read().split())
        except OSError:
            continue
    return found


def descendants_of(pid: int) -> set[int]:
    found, stack = set(), [pid]
    while stack:
        for child in children_of(stack.pop()):
            if child not in found:
                found.add(child)
                stack.append(child)
    return found


def _stat_fields(pid: int, tid: int | None = None) -> list[str] | None:
    path = f"/proc/{pid}/stat" if tid is None else f"/proc/{pid}/task/{tid}/stat"
    try:
        with open(path) as f:
            text = f.read()
    except OSError:
        return None
    # Fields after the command name (which may hold spaces and parentheses).
    return text[text.rfind(")") + 2 :].split()


def process_group_of(pid: int) -> int | None:
    fields = _stat_fields(pid)
    return int(fields[2]) if fields else None


def is_zombie(pid: int) -> bool:
    fields = _stat_fields(pid)
    return fields is None or fields[0] in ("Z", "X")


def is_alive(pid: int) -> bool:
    """Whether process `pid` exists and has not died: a zombie (dead, not yet reaped by its
    parent, which for an orphan may take a while) counts as gone; one we may not signal counts
    as alive."""
    if pid <= 0:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return not is_zombie(pid)


@dataclass
class WorkerGroup:
    """The worker's process group, as the supervisor sees it."""

    pid: int  # the worker, leader of its own group and session
    adopted_before: set[int] = field(default_factory=set)  # the supervisor's other children

    def members(self) -> set[int]:
        """The worker and every live descendant, plus orphans re-parented to the supervisor."""
        found = {self.pid} | descendants_of(self.pid)
        for child in children_of(os.getpid()) - self.adopted_before - {self.pid}:
            found |= {child} | descendants_of(child)
        return {p for p in found if not is_zombie(p)}

    def escaped(self) -> list[int]:
        """Members outside the worker's process group: a SIGSTOP of the group does not reach them."""
        return sorted(p for p in self.members() if process_group_of(p) not in (self.pid, None))

    def freeze(self, timeout_s: float = 5.0) -> None:
        """SIGSTOP the group and wait until every thread of every member has stopped."""
        try:
            os.killpg(self.pid, signal.SIGSTOP)
        except ProcessLookupError:
            return
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline and not self._all_stopped():
            time.sleep(0.0002)

    def _all_stopped(self) -> bool:
        for pid in self.members():
            if process_group_of(pid) != self.pid:
                continue  # an escapee: reported by escaped(), not waited for
            try:
                tasks = os.listdir(f"/proc/{pid}/task")
            except OSError:
                continue
            for tid in tasks:
                fields = _stat_fields(pid, int(tid))
                if fields and fields[0] not in ("T", "t", "Z", "X"):
                    return False
        return True

    def thaw(self) -> None:
        try:
            os.killpg(self.pid, signal.SIGCONT)
        except ProcessLookupError:
            pass

    def kill(self) -> None:
        """SIGKILL the group and every escapee; reap the adopted ones."""
        strays = self.members()
        try:
            os.killpg(self.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        for pid in strays:
            try:
                os.kill(pid, signal.SIGKILL)
            except (ProcessLookupError, PermissionError):
                pass
        for pid in strays - {self.pid}:
            if pid in children_of(os.getpid()):
                try:
                    os.waitpid(pid, 0)
                except ChildProcessError:
                    pass


# ---- what the worker is confined to -------------------------------------------------------------

NOBODY = "nobody"


@dataclass
class Confinement:
    """What the supervisor decides for one worker; sent to it as JSON."""

    hidden: list[str]  # paths the worker may neither read nor write
    writable: list[str]  # the only paths it may write (its private temporary folder first)
    uid: int | None = None  # run as this user (when the harness runs as root)
    gid: int | None = None

    def to_json(self) -> dict:
        return asdict(self)

    @classmethod
    def from_json(cls, data: dict) -> Confinement:
        return cls(**data)


def _readable_by_others(path: Path) -> bool:
    """Whether a user with no special rights can reach `path` (every folder above it searchable)."""
    path = path.resolve()
    for part in [path, *path.parents]:
        try:
            mode = part.stat().st_mode
        except OSError:
            return False
        needed = stat.S_IXOTH if part != path or part.is_dir() else stat.S_IROTH
        if not mode & needed:
            return False
    return True


def unprivileged_user(needed: list[Path]) -> tuple[int, int] | None:
    """(uid, gid) of `nobody` when this process is root and `nobody` can read what the worker
    needs (the interpreter, the packages, the harness code); otherwise None."""
    if os.geteuid() != 0:
        return None
    try:
        entry = pwd.getpwnam(NOBODY)
    except KeyError:
        return None
    if not all(_readable_by_others(p) for p in needed):
        return None
    return entry.pw_uid, entry.pw_gid


# ---- the worker's side --------------------------------------------------------------------------

# Landlock (Linux >= 5.13): a process restricts itself, irreversibly, for it and its children.
_SYS_CREATE_RULESET, _SYS_ADD_RULE, _SYS_RESTRICT_SELF = 444, 445, 446
_RULE_PATH_BENEATH = 1
_EXECUTE, _WRITE_FILE, _READ_FILE, _READ_DIR = 1 << 0, 1 << 1, 1 << 2, 1 << 3
_FILE_ONLY_RIGHTS = _EXECUTE | _WRITE_FILE | _READ_FILE | (1 << 14) | (1 << 15)  # + truncate, ioctl
_ABI_RIGHTS = {1: (1 << 13) - 1, 2: (1 << 14) - 1, 3: (1 << 15) - 1, 4: (1 << 15) - 1}
_SCOPE_SIGNAL = 1 << 1  # ABI 6: no signals to processes outside the sandbox
_SCOPE_ABSTRACT_UNIX = 1 << 0


class _PathBeneath(ctypes.Structure):
    _pack_ = 1
    _fields_ = [("allowed_access", ctypes.c_uint64), ("parent_fd", ctypes.c_int32)]


def landlock_abi() -> int:
    """Landlock ABI version of the running kernel; 0 when unavailable."""
    if not sys.platform.startswith("linux"):
        return 0
    version = _libc.syscall(_SYS_CREATE_RULESET, None, ctypes.c_size_t(0), ctypes.c_uint32(1))
    return max(0, int(version))


def _handled_rights(abi: int) -> int:
    return _ABI_RIGHTS.get(abi, (1 << 16) - 1)


def _allow_except(root: Path, holes: list[Path], add) -> None:
    """Add a rule for `root` unless a hole lies under it; then descend and add its other entries."""
    if any(h == root for h in holes):
        return
    if not any(root in h.parents for h in holes):
        add(root)
        return
    try:
        entries = sorted(os.listdir(root))
    except OSError:
        return
    for name in entries:
        _allow_except(root / name, holes, add)


def landlock_restrict(hidden: list[Path], writable: list[Path]) -> int:
    """Everything readable and executable except `hidden`; writable only under `writable` (and
    devices except /dev/shm). Returns the ABI used, 0 when Landlock is unavailable."""
    abi = landlock_abi()
    if abi < 1:
        return 0
    handled = _handled_rights(abi)
    scoped = _SCOPE_SIGNAL | _SCOPE_ABSTRACT_UNIX if abi >= 6 else 0

    class Attr(ctypes.Structure):
        _fields_ = [("fs", ctypes.c_uint64), ("net", ctypes.c_uint64), ("scoped", ctypes.c_uint64)]

    attr = Attr(handled, 0, scoped)
    size = ctypes.sizeof(Attr) if abi >= 6 else 8
    ruleset = _libc.syscall(
        _SYS_CREATE_RULESET, ctypes.byref(attr), ctypes.c_size_t(size), ctypes.c_uint32(0)
    )
    if ruleset < 0:
        raise OSError(ctypes.get_errno(), "landlock_create_ruleset failed")
    read = _EXECUTE | _READ_FILE | _READ_DIR

    def rule(path: Path, rights: int) -> None:
        try:
            fd = os.open(path, os.O_PATH | os.O_CLOEXEC | os.O_NOFOLLOW)
        except OSError:
            return
        try:
            is_dir = stat.S_ISDIR(os.fstat(fd).st_mode)
            allowed = (rights if is_dir else rights & _FILE_ONLY_RIGHTS) & handled
            beneath = _PathBeneath(allowed, fd)
            _libc.syscall(_SYS_ADD_RULE, ruleset, _RULE_PATH_BENEATH, ctypes.byref(beneath), 0)
        finally:
            os.close(fd)

    try:
        holes = [Path(os.path.realpath(h)) for h in hidden]
        _allow_except(Path("/"), holes, lambda p: rule(p, read))
        _allow_except(Path("/dev"), [*holes, Path("/dev/shm")], lambda p: rule(p, handled))
        for path in writable:
            rule(Path(path), handled)
        if _libc.syscall(_SYS_RESTRICT_SELF, ruleset, 0) != 0:
            raise OSError(ctypes.get_errno(), "landlock_restrict_self failed")
    finally:
        os.close(ruleset)
    return abi


def confine_self(confinement: Confinement, parent_pid: int) -> dict:
    """Applied by the worker to itself before any submission code runs; returns what took effect."""
    _prctl(PR_SET_PDEATHSIG, signal.SIGKILL)  # die with the supervisor
    if os.getppid() != parent_pid:  # the supervisor died before the line above
        os._exit(1)
    _prctl(PR_SET_NO_NEW_PRIVS, 1)
    abi = landlock_restrict([Path(p) for p in confinement.hidden], [Path(p) for p in confinement.writable])
    return {"uid": os.geteuid(), "landlock_abi": abi, "process_group": os.getpgid(0)}
