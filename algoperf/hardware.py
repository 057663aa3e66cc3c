"""Hardware fingerprint of this machine, and per-workload settings from a hardware profile.

The fingerprint is read without any framework (from /proc and nvidia-smi), so scoring and
the CLI can compute it anywhere. Scores never mix results of different fingerprints.
"""

from __future__ import annotations

import hashlib
import os
import platform
import shutil
import subprocess
from dataclasses import dataclass
from functools import lru_cache
from typing import TYPE_CHECKING, Any

from algoperf.errors import AlgoperfError, did_you_mean

if TYPE_CHECKING:
    from algoperf.schema import HardwareConfig


@lru_cache(maxsize=1)
def fingerprint() -> dict[str, Any]:
    cpu_model = platform.processor() or platform.machine()
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    cpu_model = line.split(":", 1)[1].strip()
                    break
    except OSError:
        pass
    memory_gib = None
    try:
        memory_gib = round(os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30)
    except (ValueError, OSError, AttributeError):
        pass
    cpu_count = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    gpus = _nvidia_gpus()
    device = gpus[0] if gpus else "cpu"
    identity = f"{device}|{len(gpus)}|{cpu_model}|{cpu_count}|{memory_gib}"
    return {
        "fingerprint": hashlib.sha256(identity.encode()).hexdigest()[:16],
        "device": device,
        "device_count": len(gpus) if gpus else 1,
        "cpu": cpu_model,
        "cpu_count": cpu_count,
        "memory_gib": memory_gib,
        "platform": platform.platform(),
    }


def _nvidia_gpus() -> list[str]:
    if not shutil.which("nvidia-smi"):
        return []
    try:
        out = subprocess.run(
            ["nvidia-smi", "--query-gpu=name", "--format=csv,noheader"],
            capture_output=True,
            text=True,
            timeout=20,
        )
    except (OSError, subprocess.SubprocessError):
        return []
    return [line.strip() for line in out.stdout.splitlines() if line.strip()]


@dataclass(frozen=True)
class WorkloadSettings:
    """What a hardware profile fixes for one workload and framework."""

    size: str
    max_submission_time_s: float
    eval_every_steps: int | None
    eval_period_s: float | None
    eval_test: str  # "every" eval or only the "final" one


def workload_settings(profile: HardwareConfig, workload: str, framework: str) -> WorkloadSettings:
    """Merge the profile's defaults, the workload's entry and its per-framework override."""
    name = profile.name
    entries = profile.workloads
    if workload not in entries:
        raise AlgoperfError(
            f"hardware profile {name!r} has no settings for workload {workload!r}: add it under "
            f"`workloads:` in conf/hardware/{name}.yaml (size, max_submission_time_s, eval schedule)."
            + did_you_mean(workload, entries)
        )
    merged = {**profile.common, **entries[workload]}
    merged.update((merged.pop("frameworks", None) or {}).get(framework) or {})
    try:
        settings = WorkloadSettings(
            size=str(merged["size"]),
            max_submission_time_s=float(merged["max_submission_time_s"]),
            eval_every_steps=int(merged["eval_every_steps"]) if merged.get("eval_every_steps") else None,
            eval_period_s=float(merged["eval_period_s"]) if merged.get("eval_period_s") else None,
            eval_test=str(merged.get("eval_test", "every")),
        )
    except KeyError as e:
        raise AlgoperfError(
            f"conf/hardware/{name}.yaml: workload {workload!r} lacks {e.args[0]!r}."
        ) from None
    if settings.eval_every_steps is None and settings.eval_period_s is None:
        raise AlgoperfError(
            f"conf/hardware/{name}.yaml: workload {workload!r} needs `eval_every_steps` or `eval_period_s`."
        )
    return settings
