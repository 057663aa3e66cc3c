"""Every repository path the docs, the templates and the code's comments point to exists, and
nothing points outside the repository."""

from __future__ import annotations

import re

import pytest

from algoperf.plugins import REPO_ROOT

# Paths as they are written in prose and comments: a top-level folder of the repository, then
# a path ending in a file with an extension or in a folder's slash.
PATH = re.compile(
    r"(?<![\w./-])((?:algoperf|workloads|submissions|docs|tests|benchmarks|conf|scripts)/[\w./-]*[\w/])"
)
# Paths that name a pattern or a place made at run time, not a file of the repository.
GENERATED = re.compile(r"<|\*|\{|/results/|/my_|NAME|_$|^tests/golden/.+\.json$")


def documents() -> list:
    paths = [REPO_ROOT / "README.md", *REPO_ROOT.glob("docs/*.md"), *REPO_ROOT.glob("*/README.md")]
    paths += [*REPO_ROOT.glob("algoperf/**/*.py"), *REPO_ROOT.glob("submissions/template/*")]
    paths += [*REPO_ROOT.glob("workloads/**/*.py"), *REPO_ROOT.glob("benchmarks/*.md")]
    return sorted(p for p in paths if p.is_file())


@pytest.mark.parametrize("document", documents(), ids=lambda p: str(p.relative_to(REPO_ROOT)))
def test_paths_named_in_the_document_exist(document):
    text = document.read_text(encoding="utf-8")
    missing = sorted(
        {
            path
            for path in PATH.findall(text)
            if not GENERATED.search(path) and not (REPO_ROOT / path.rstrip(".")).exists()
        }
    )
    assert not missing, f"{document.relative_to(REPO_ROOT)} names paths that do not exist: {missing}"


@pytest.mark.parametrize("document", documents(), ids=lambda p: str(p.relative_to(REPO_ROOT)))
def test_nothing_points_outside_the_repository(document):
    text = document.read_text(encoding="utf-8")
    # A relative path that climbs out of its folder leads outside what a clone holds.
    outside = re.findall(r"(?<![\w.])\.\./[\w./-]+", text)
    assert not outside, f"{document.relative_to(REPO_ROOT)} points outside the repository: {outside}"
