"""The one exception type for problems a user can cause and fix."""

from __future__ import annotations

import difflib
from collections.abc import Iterable


class AlgoperfError(Exception):
    """A user-fixable problem. The message names the thing, what is wrong, and the fix."""


def did_you_mean(name: str, valid: Iterable[str]) -> str:
    """A hint listing the nearest valid names first, then all of them."""
    valid = sorted(valid)
    close = difflib.get_close_matches(name, valid, n=3, cutoff=0.5)
    hint = f" Did you mean {', '.join(repr(c) for c in close)}?" if close else ""
    return f"{hint} Valid: {', '.join(valid) if valid else '(none)'}."
