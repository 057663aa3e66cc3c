"""Optional trial loggers (the results folder is always the source of truth)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any


def make_callbacks(cfg: Any) -> list[Callable[[str, dict[str, Any]], None]]:
    name = cfg.logger.name if "logger" in cfg else "none"
    if name == "none":
        return []
    if name == "wandb":
        from algoperf.wandb_logger import WandbLogger

        return [WandbLogger(dict(cfg.logger))]
    from algoperf.errors import AlgoperfError

    raise AlgoperfError(f"unknown logger {name!r}; use logger=none or logger=wandb.")
