"""Optional trial loggers (the results folder is always the source of truth)."""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from algoperf.schema import RunConfig


def make_callbacks(cfg: RunConfig) -> list[Callable[[str, dict[str, Any]], None]]:
    name = cfg.logger.name
    if name == "none":
        return []
    if name == "wandb":
        from algoperf.wandb_logger import WandbLogger

        return [WandbLogger(cfg.logger)]
    from algoperf.errors import AlgoperfError

    raise AlgoperfError(f"unknown logger {name!r}; use logger=none or logger=wandb.")
