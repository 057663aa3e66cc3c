"""Hydra configuration: compose `conf/` with command-line overrides, and validate every key."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from omegaconf import DictConfig, OmegaConf

from algoperf.errors import AlgoperfError, did_you_mean

CONF_DIR = Path(__file__).resolve().parent.parent / "conf"
GROUPS = ("hardware", "ruleset", "logger")


def extra_config_dirs() -> list[Path]:
    """Folders in $ALGOPERF_CONFIG_PATH add configs (e.g. a site's own hardware profiles)."""
    return [Path(p) for p in os.environ.get("ALGOPERF_CONFIG_PATH", "").split(os.pathsep) if p]


def searchpath_override() -> list[str]:
    dirs = extra_config_dirs()
    return [f"hydra.searchpath=[{','.join('file://' + str(d.resolve()) for d in dirs)}]"] if dirs else []


def normalise_overrides(overrides: list[str]) -> list[str]:
    """`hparams.lr=0.1` adds a key to the open `hparams` mapping, so Hydra needs `+` there."""
    out = []
    for item in overrides:
        key = item.split("=", 1)[0]
        if "=" not in item:
            raise AlgoperfError(f"argument {item!r} is not KEY=VALUE (e.g. workload=fashion_mnist).")
        if key.startswith("hparams.") and not key.startswith("+"):
            item = "+" + item
        out.append(item)
    return out


def check_keys(overrides: list[str], cfg_keys: list[str]) -> None:
    """Reject unknown keys with the nearest valid names (before Hydra's own, terser error)."""
    for item in overrides:
        key = item.split("=", 1)[0].lstrip("+~")
        top = key.split(".", 1)[0].split("/", 1)[0]
        if top in ("hydra",):
            continue
        if top not in cfg_keys:
            raise AlgoperfError(f"unknown setting {top!r}." + did_you_mean(top, cfg_keys))


def group_options(group: str) -> list[str]:
    return sorted({p.stem for d in [CONF_DIR, *extra_config_dirs()] for p in (d / group).glob("*.yaml")})


def compose(overrides: list[str], config_name: str = "config") -> DictConfig:
    from hydra import compose as hydra_compose
    from hydra import initialize_config_dir
    from hydra.errors import HydraException, MissingConfigException

    overrides = normalise_overrides(overrides)
    base = OmegaConf.load(CONF_DIR / f"{config_name}.yaml")
    check_keys(overrides, [k for k in base if k != "defaults"] + list(GROUPS))
    for item in overrides:
        key, value = item.split("=", 1)
        if key in GROUPS and value not in group_options(key):
            raise AlgoperfError(
                f"unknown {key} {value!r}: add conf/{key}/{value}.yaml or pick one of the existing."
                + did_you_mean(value, group_options(key))
            )
    try:
        with initialize_config_dir(config_dir=str(CONF_DIR), version_base="1.3"):
            cfg = hydra_compose(config_name=config_name, overrides=overrides + searchpath_override())
    except (HydraException, MissingConfigException) as e:
        raise AlgoperfError(f"bad configuration: {e}") from None
    missing = sorted(OmegaConf.missing_keys(cfg))
    if missing:
        raise AlgoperfError(
            f"missing required setting(s): {', '.join(missing)}, e.g. "
            "`algoperf run workload=fashion_mnist submission=adamw`."
        )
    return cfg


def to_dict(cfg: DictConfig | dict[str, Any]) -> dict[str, Any]:
    if isinstance(cfg, DictConfig):
        return OmegaConf.to_container(cfg, resolve=True)  # type: ignore[return-value]
    return dict(cfg)
