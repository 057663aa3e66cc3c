"""Mirror a trial to Weights & Biases: one run per trial, grouped by sweep/submission/workload."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from algoperf.schema import LoggerConfig


class WandbLogger:
    """A runner callback: `start` opens the run, `eval` logs a row, `end` logs the record."""

    def __init__(self, settings: LoggerConfig):
        self.settings = settings
        self.run = None

    def __call__(self, event: str, payload: dict[str, Any]) -> None:
        import wandb

        if event == "start":
            record = payload["record"]
            self.run = wandb.init(
                project=self.settings.project,
                entity=self.settings.entity,
                mode=self.settings.mode,
                group=f"{record['sweep']}/{record['submission']}/{record['workload']}",
                job_type=record["framework"],
                name=f"{record['submission']}-{record['workload']}-{record['framework']}"
                f"-s{record['study']}-t{record['trial']}",
                config={
                    "hparams": record["hparams"],
                    **{
                        k: record[k]
                        for k in (
                            "sweep",
                            "submission",
                            "workload",
                            "framework",
                            "ruleset",
                            "study",
                            "trial",
                            "seed",
                            "target",
                            "metric_name",
                            "hardware_profile",
                        )
                    },
                },
                dir=self.settings.dir,
                reinit="finish_previous",
            )
        elif event == "eval" and self.run is not None:
            row = {k: v for k, v in payload["row"].items() if v is not None}
            self.run.log(row, step=int(row["step"]))
        elif event == "end" and self.run is not None:
            record = payload["record"]
            for key in (
                "status",
                "time_to_target_s",
                "steps_to_target",
                "submission_time_s",
                "eval_time_s",
                "global_steps",
                "best_validation",
                "final_test",
            ):
                self.run.summary[key] = record.get(key)
            self.run.finish(exit_code=0 if record["status"] != "failed" else 1)
            self.run = None
