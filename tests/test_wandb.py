"""`logger=wandb` mirrors a trial to an offline W&B run in a temporary folder."""

from conftest import fixture_submission

from algoperf.cli import main


def test_offline_wandb_run_holds_evals_and_summary(tmp_path, monkeypatch):
    monkeypatch.setenv("WANDB_MODE", "offline")
    monkeypatch.setenv("WANDB_DIR", str(tmp_path / "wandb"))
    monkeypatch.setenv("WANDB_SILENT", "true")
    (tmp_path / "wandb").mkdir()
    code = main(
        [
            "run",
            "workload=toy",
            f"submission={fixture_submission('sgd')}",
            "hardware=test",
            f"results_dir={tmp_path / 'results'}",
            "logger=wandb",
            "progress=false",
        ]
    )
    assert code == 0
    runs = list((tmp_path / "wandb").rglob("run-*.wandb"))
    assert len(runs) == 1
    # Offline runs are a protobuf log: the eval rows, the record summary and the config are in it.
    log = runs[0].read_bytes()
    for expected in (
        b"validation_metric",
        b"steps_to_target",
        b"reached",
        b"learning_rate",
        b"default/sgd/toy",
    ):
        assert expected in log, expected
