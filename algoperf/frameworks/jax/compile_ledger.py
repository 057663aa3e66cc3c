"""Seconds and number of XLA compilations in this process, fed by a jax.monitoring listener.

XLA's own compilation is reported under BACKEND_COMPILE_EVENT; tracing and lowering are not
counted (tracing nests: an inner jit's trace is inside its caller's trace).
"""

from __future__ import annotations

from typing import Any

from jax import monitoring

BACKEND_COMPILE_EVENT = "/jax/core/compile/backend_compile_duration"


class _CompileLedger:
    def __init__(self) -> None:
        self.seconds = 0.0
        self.count = 0

    def __call__(self, event: str, duration_s: float, **_: Any) -> None:
        if event == BACKEND_COMPILE_EVENT:
            self.seconds += duration_s
            self.count += 1


_COMPILES = _CompileLedger()
# Registered once, when the harness imports the backend (before any compilation it measures).
monitoring.register_event_duration_secs_listener(_COMPILES)


def compile_time_s() -> float:
    """Seconds XLA has spent compiling so far in this process."""
    return _COMPILES.seconds


def compile_count() -> int:
    """Number of XLA compilations so far in this process (tests use it to catch recompiles)."""
    return _COMPILES.count
