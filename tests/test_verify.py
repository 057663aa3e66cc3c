"""`score --verify` flags records whose submission code changed after they were measured."""

import shutil

from conftest import FIXTURES, TOY_PROFILE

from algoperf.cli import main
from algoperf.runner import run_trial
from algoperf.schema import RunConfig


def test_verify_flags_changed_submission(tmp_path, capsys):
    submission = tmp_path / "sub"
    shutil.copytree(FIXTURES / "submissions" / "sgd", submission)
    cfg = RunConfig(
        workload="toy",
        submission=str(submission),
        hardware=TOY_PROFILE,
        results_dir=str(tmp_path / "results"),
        threads=1,
    )
    assert run_trial(cfg, progress=False)["status"] == "reached"
    assert main(["score", str(tmp_path / "results"), "--verify"]) == 0
    assert "all 1 records match" in capsys.readouterr().out
    with open(submission / "torch.py", "a") as f:
        f.write("\n# tuned after the fact\n")
    assert main(["score", str(tmp_path / "results"), "--verify"]) == 1
    out = capsys.readouterr().out
    assert "changed since the trial ran" in out and "torch.py" in out
