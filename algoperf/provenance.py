"""Software provenance of a record: versions (read without importing the packages) and git commit."""

from __future__ import annotations

import platform
import subprocess
from functools import lru_cache
from importlib import metadata
from pathlib import Path
from typing import Any

REPO_ROOT = Path(__file__).resolve().parent.parent
PACKAGES = ("algoperf", "torch", "jax", "jaxlib", "optax", "flax", "numpy", "pytorch_optimizer")


def _version(package: str) -> str | None:
    try:
        return metadata.version(package)
    except metadata.PackageNotFoundError:
        return None


@lru_cache(maxsize=1)
def git_commit() -> str | None:
    """HEAD of the checkout the harness runs from, with "+dirty" when files were changed."""
    try:
        commit = subprocess.run(
            ["git", "-C", str(REPO_ROOT), "rev-parse", "HEAD"],
            capture_output=True,
            text=True,
            timeout=10,
        )
        if commit.returncode != 0:
            return None
        dirty = subprocess.run(
            ["git", "-C", str(REPO_ROOT), "status", "--porcelain", "--untracked-files=no"],
            capture_output=True,
            text=True,
            timeout=10,
        )
        return commit.stdout.strip() + ("+dirty" if dirty.stdout.strip() else "")
    except (OSError, subprocess.SubprocessError):
        return None


def software_versions(framework: str | None = None) -> dict[str, Any]:
    versions: dict[str, Any] = {"python": platform.python_version()}
    versions.update({name: _version(name) for name in PACKAGES})
    versions["git_commit"] = git_commit()
    versions["framework"] = framework
    return versions
