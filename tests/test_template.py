"""The submission template: what `algoperf new-submission` copies must pass `algoperf check`
as it is, two real training steps on fashion_mnist included."""

from __future__ import annotations

from pathlib import Path

import pytest

from algoperf.check import check_submission, new_submission
from algoperf.errors import AlgoperfError
from algoperf.plugins import REPO_ROOT, find_submission
from algoperf.tuning import SearchSpace

TEMPLATE = REPO_ROOT / "submissions" / "template"


def test_template_has_its_files():
    for name in ("torch.py", "jax.py", "search_space.yaml", "README.md"):
        assert (TEMPLATE / name).is_file(), f"submissions/template/{name} is missing"
    defaults = SearchSpace.from_yaml(TEMPLATE / "search_space.yaml").defaults()
    assert set(defaults) >= {"learning_rate", "weight_decay", "warmup_fraction"}


def test_new_submission_copies_the_template(tmp_path: Path):
    path = new_submission("my_optimizer", str(tmp_path))
    assert path == tmp_path / "my_optimizer"
    for source in TEMPLATE.iterdir():
        if source.is_file():
            assert (path / source.name).read_bytes() == source.read_bytes()
    assert not (path / "__pycache__").exists()
    assert find_submission(str(path)).frameworks == ["torch", "jax"]


def test_new_submission_refuses_bad_names_and_existing_folders(tmp_path: Path):
    with pytest.raises(AlgoperfError, match="must be a Python identifier"):
        new_submission("my-optimizer", str(tmp_path))
    new_submission("mine", str(tmp_path))
    with pytest.raises(AlgoperfError, match="already exists"):
        new_submission("mine", str(tmp_path))


@pytest.mark.slow
def test_copied_template_passes_check_with_two_real_steps(tmp_path: Path, capsys):
    path = new_submission("my_optimizer", str(tmp_path))
    ok = check_submission(str(path), framework="torch", workload="fashion_mnist", run_step=True)
    out = capsys.readouterr().out
    assert ok, out
    assert "two training steps on fashion_mnist ran" in out and "all checks passed" in out
