"""Framework backends: the only place the harness imports torch or jax.

`load_backend(name)` gives the `Backend` (algoperf/frameworks/backend.py) of a framework;
`algoperf.frameworks.torch` and `algoperf.frameworks.jax` are the packages that implement it.
"""

from __future__ import annotations

import functools
import importlib

from algoperf.frameworks.backend import Backend

FRAMEWORKS = ("torch", "jax")


@functools.cache
def load_backend(name: str) -> Backend:
    """The backend of framework `name` (imports that framework on first use)."""
    if name not in FRAMEWORKS:
        raise ValueError(f"unknown framework {name!r}: one of {', '.join(FRAMEWORKS)}")
    return importlib.import_module(f"algoperf.frameworks.{name}").BACKEND
