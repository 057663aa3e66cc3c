"""Hydra configuration: compose `conf/` with command-line overrides into the typed objects of
algoperf.schema (`RunConfig` for a run, `SweepConfig` for a sweep's own settings).

OmegaConf refuses an unknown key or a value of the wrong type while composing, and the schema's
`__post_init__` checks ranges when `OmegaConf.to_object` builds the object. Either way the user
reads one line per problem: the key, the value, what is wrong and the fix."""

from __future__ import annotations

import dataclasses
import os
import typing
from pathlib import Path
from typing import Any

import yaml
from omegaconf import DictConfig, OmegaConf
from omegaconf.errors import (
    ConfigAttributeError,
    ConfigKeyError,
    MissingMandatoryValue,
    OmegaConfBaseException,
)

from algoperf.errors import AlgoperfError, did_you_mean
from algoperf.plugins import REPO_ROOT
from algoperf.schema import RunConfig, SweepConfig, fix_for, problem_line
from algoperf.tuning import yaml_error_message

CONF_DIR = REPO_ROOT / "conf"
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


def group_options(group: str) -> list[str]:
    return sorted({p.stem for d in [CONF_DIR, *extra_config_dirs()] for p in (d / group).glob("*.yaml")})


def compose(overrides: list[str]) -> RunConfig:
    """The run configuration of conf/config.yaml with these overrides, checked and typed."""
    overrides = normalise_overrides(overrides)
    for item in overrides:
        key, value = item.split("=", 1)
        if key in GROUPS and value not in group_options(key):
            raise AlgoperfError(
                f"unknown {key} {value!r}: add conf/{key}/{value}.yaml or pick one of the existing."
                + did_you_mean(value, group_options(key))
            )
    return typed(compose_node(overrides, "config", RunConfig), RunConfig)


def compose_sweep(overrides: list[str]) -> SweepConfig:
    """A sweep's own settings (the sweep_schema node with these overrides), checked and typed."""
    return typed(compose_node(overrides, "sweep_schema", SweepConfig), SweepConfig)


def compose_node(overrides: list[str], config_name: str, schema: type) -> DictConfig:
    """Hydra's composition (the schema refuses unknown keys and wrong types), as a DictConfig."""
    from hydra import compose as hydra_compose
    from hydra import initialize_config_dir
    from hydra.errors import HydraException, MissingConfigException

    strict_switches(overrides, schema)
    try:
        with initialize_config_dir(config_dir=str(CONF_DIR), version_base="1.3"):
            return hydra_compose(config_name=config_name, overrides=overrides + searchpath_override())
    except (HydraException, MissingConfigException, OmegaConfBaseException) as e:
        raise config_error(e, schema) from None
    except yaml.YAMLError as e:  # OmegaConf refuses a duplicate key, with PyYAML's error
        raise AlgoperfError(yaml_error_message(e, "a config file")) from None


def typed(cfg: DictConfig, schema: type) -> Any:
    """The schema's object of a composed configuration (a Hydra job's too): OmegaConf builds it,
    running each class's __post_init__ checks."""
    missing = sorted(OmegaConf.missing_keys(cfg))
    if missing:
        raise AlgoperfError(
            f"missing required setting(s): {', '.join(missing)}, e.g. `{getattr(schema, 'EXAMPLE', '')}`."
        )
    try:
        unknown_keys(cfg)
        return OmegaConf.to_object(cfg)
    except OmegaConfBaseException as e:
        raise config_error(e, schema) from None


def unknown_keys(node: DictConfig, prefix: str = "") -> None:
    """Refuse a key the schema does not declare: `+KEY=VALUE` adds one past OmegaConf's struct
    flag, and OmegaConf.to_object would set it as a stray attribute."""
    schema = OmegaConf.get_type(node)
    declared = {f.name for f in dataclasses.fields(schema)} if dataclasses.is_dataclass(schema) else None
    for key in node.keys():
        if declared is not None and key not in declared:
            raise UnknownSetting(f"{prefix}{key}", schema)
        child = node._get_node(key)
        if isinstance(child, DictConfig) and not child._is_missing() and not child._is_none():
            unknown_keys(child, f"{prefix}{key}.")


# ---- OmegaConf's errors, worded like the schema's own -------------------------------------------


def config_error(error: Exception, schema: type) -> AlgoperfError:
    """One line for a composition error: the key, the value, what is wrong and the fix."""
    cause: BaseException | None = error
    while cause is not None and not isinstance(cause, OmegaConfBaseException):
        cause = cause.__cause__ or cause.__context__  # Hydra raises some without `from`
    if cause is None:  # Hydra's own (a bad override syntax, a missing config file)
        return AlgoperfError(f"bad configuration: {' '.join(str(error).split())}")
    # Hydra names the config file a key came from ("In 'hardware/cpu': ...").
    source = str(error).split("'")[1] if str(error).startswith("In '") else None
    if isinstance(cause, (ConfigKeyError, ConfigAttributeError)) and not isinstance(
        cause, MissingMandatoryValue
    ):
        owner = cause.object_type if dataclasses.is_dataclass(cause.object_type) else schema
        return UnknownSetting(str(cause.full_key), owner, f"{source}.yaml" if source else "")
    line = _explained(cause, schema)
    return AlgoperfError(f"{source}.yaml: {line}" if source else line)


def _explained(cause: OmegaConfBaseException, schema: type) -> str:
    key = str(cause.full_key or getattr(cause, "key", "") or "")
    owner = cause.object_type if dataclasses.is_dataclass(cause.object_type) else None
    if isinstance(cause, MissingMandatoryValue):
        return f"missing required setting {key}, e.g. `{getattr(schema, 'EXAMPLE', '')}`."
    name = key.rsplit(".", 1)[-1]
    value = getattr(cause, "value", None)
    return problem_line(key, value, _what(cause.msg), fix_for(owner, name))


class UnknownSetting(AlgoperfError):
    """A key the schema does not declare, with the nearest declared ones."""

    def __init__(self, key: str, owner: type, where: str = "", also: tuple[str, ...] = ()):
        prefix = key.rpartition(".")[0]
        self.key, self.owner, self.where = key, owner, where
        self.valid = [f"{prefix}.{f.name}" if prefix else f.name for f in dataclasses.fields(owner)]
        self.valid += also
        super().__init__(
            f"{where}: " * bool(where) + f"unknown setting {key!r}." + did_you_mean(key, self.valid)
        )


TYPE_PROBLEMS = {
    "converted to Integer": "is not an integer",
    "converted to Float": "is not a number",
    "not a valid bool": "is not true or false",
    "converted to String": "is not text",
    "Cannot convert": "is not text",
    "is not a ListConfig": "is not a list",
    "is not a subclass of": "is not a mapping",
    "Cannot assign": "is not a mapping",
    "cannot be assigned None": "cannot be null",
    "is not Optional": "cannot be null",
}


def _what(message: str) -> str:
    first = message.splitlines()[0] if message else "is not valid"
    return next((what for fragment, what in TYPE_PROBLEMS.items() if fragment in first), first)


def strict_switches(overrides: list[str], schema: type) -> None:
    """A true/false setting takes true or false: OmegaConf would read `yes`, `on` or `2` as true."""
    from hydra.core.override_parser.overrides_parser import OverridesParser

    try:
        parsed = OverridesParser.create().parse_overrides(overrides)
    except Exception:  # a syntax error: Hydra says so while composing
        return
    for override in parsed:
        key = override.key_or_group
        if _field_type(schema, key) is bool and not isinstance(override.value(), bool):
            value = override.value()
            raise AlgoperfError(
                problem_line(key, value, "is not true or false", f"give {key}=true or {key}=false")
            )


def _field_type(schema: Any, key: str) -> Any:
    """The declared type of a dotted key of the schema (None where the schema does not say)."""
    for name in key.split("."):
        if not (isinstance(schema, type) and dataclasses.is_dataclass(schema)):
            return None
        schema = typing.get_type_hints(schema).get(name)
    return schema
