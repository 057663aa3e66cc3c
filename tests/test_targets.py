"""`algoperf set-targets` end to end on the toy workload: search, repeats, and the snippets it
prints for the workload's size and the hardware profile."""

from algoperf.targets import main as set_targets


def test_set_targets_prints_the_size_and_the_profile_entry(tmp_path, capsys):
    figures = set_targets(
        [
            "toy",
            "--submission",
            "adamw",
            "--hardware",
            "test",
            "--configs",
            "1",
            "--seeds",
            "1",
            "--step-hint",
            "60",
            "--eval-every",
            "20",
            "--results-dir",
            str(tmp_path),
        ]
    )
    out = capsys.readouterr().out
    assert figures["seeds_reaching_target"] == "1/1", out
    assert f"WorkloadSize(target={figures['target']}, step_hint=" in out
    assert "profile (test):\n  toy:\n    size: small\n" in out
    assert "eval_every_steps: 20" in out
