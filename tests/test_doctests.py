"""The examples in algoperf's docstrings run as tests: every module whose source holds a `>>>`
line is imported (only those: no module is imported just to look for examples, so nothing pulls
in torch or jax for this) and every one of its examples must pass. An example doctest cannot
reach (in a nested function, or a `>>>` outside a docstring) fails here too, rather than never
running."""

from __future__ import annotations

import doctest
import importlib
import io
import re
from pathlib import Path

import pytest

from algoperf.plugins import REPO_ROOT

PACKAGE = REPO_ROOT / "algoperf"
PROMPT = re.compile(r"^\s*>>> ", re.MULTILINE)


def modules_with_examples() -> list[str]:
    found = []
    for path in sorted(PACKAGE.rglob("*.py")):
        if PROMPT.search(path.read_text(encoding="utf-8")):
            parts = path.relative_to(REPO_ROOT).with_suffix("").parts
            found.append(".".join(parts[:-1] if parts[-1] == "__init__" else parts))
    return found


MODULES = modules_with_examples()


def test_the_scoring_examples_are_found():
    assert "algoperf.scoring" in MODULES


@pytest.mark.parametrize("name", MODULES)
def test_docstring_examples_pass(name):
    module = importlib.import_module(name)
    source = Path(module.__file__).read_text(encoding="utf-8")
    claimed = len(PROMPT.findall(source))
    tests = doctest.DocTestFinder().find(module)
    found = sum(len(t.examples) for t in tests)
    assert found == claimed, (
        f"{name} has {claimed} `>>>` line(s) but doctest finds {found} example(s): each must sit "
        "in the docstring of the module or of a top-level function, class or method"
    )
    output = io.StringIO()
    runner = doctest.DocTestRunner(optionflags=doctest.ELLIPSIS | doctest.NORMALIZE_WHITESPACE)
    for test in tests:
        runner.run(test, out=output.write)
    result = runner.summarize(verbose=False)
    assert result.failed == 0, (
        f"{result.failed} of {result.attempted} example(s) failed:\n{output.getvalue()}"
    )
