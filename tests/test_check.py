"""`algoperf check` and name errors: each problem named, with its fix, before any training."""

import subprocess
import sys

import pytest
from conftest import fixture_submission

from algoperf.cli import main


def check(capsys, name, *extra):
    code = main(["check", fixture_submission(name), "--framework", "torch", "--workload", "toy", *extra])
    out = capsys.readouterr()
    return code, out.out + out.err


def test_valid_submission_passes_and_runs_two_steps(capsys):
    code, out = check(capsys, "sgd")
    assert code == 0, out
    assert "two training steps on toy ran" in out and "all checks passed" in out


@pytest.mark.parametrize(
    "name, expected",
    [
        ("syntax_error", "syntax error at line 1"),
        ("missing_function", "missing function data_selection(workload, input_queue"),
        ("wrong_signature", "make_optimizer lacks parameter(s) hparams, workload"),
        ("bad_space", "`min` (0.1) must be below `max` (0.01)"),
    ],
)
def test_broken_submissions_are_explained_and_not_trained(capsys, name, expected):
    code, out = check(capsys, name)
    assert code != 0
    assert expected in out
    assert "training steps" not in out  # stopped before any compute
    assert "FAIL" in out and "fix" in out


def test_unknown_submission_lists_valid_ones(capsys):
    code = main(["check", "adamww"])
    err = capsys.readouterr().err
    assert code == 2
    assert "unknown submission 'adamww'" in err and "Did you mean 'adamw'" in err


def test_unknown_workload_lists_valid_ones(capsys):
    code = main(["run", "workload=fashion_mnst", "submission=adamw"])
    err = capsys.readouterr().err
    assert code == 2
    assert "unknown workload 'fashion_mnst'" in err and "'fashion_mnist'" in err


def test_unknown_setting_names_the_nearest(capsys):
    code = main(["run", "workload=toy", "submision=adamw"])
    err = capsys.readouterr().err
    assert code == 2 and "unknown setting 'submision'" in err and "'submission'" in err


def test_unknown_hardware_profile(capsys):
    code = main(["run", "workload=toy", "submission=adamw", "hardware=gpu9000"])
    err = capsys.readouterr().err
    assert code == 2 and "unknown hardware 'gpu9000'" in err and "cpu" in err


def test_submission_file_named_torch_does_not_shadow_torch():
    code = (
        "import torch, sys\n"
        "from algoperf.plugins import find_submission, import_submission_file\n"
        "m = import_submission_file(find_submission('adamw'), 'torch')\n"
        "assert sys.modules['torch'] is torch and hasattr(torch, 'optim')\n"
        "assert m.__name__ != 'torch' and m.__name__.startswith('algoperf_plugins.')\n"
        "import importlib; assert importlib.import_module('torch') is torch\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True)
