"""Hydra configuration: compose `conf/` with command-line overrides, and validate every key."""

from __future__ import annotations

import os
import re
from pathlib import Path
from typing import Annotated, Any, Literal

import yaml
from omegaconf import DictConfig, OmegaConf
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from algoperf.errors import AlgoperfError, did_you_mean
from algoperf.plugins import REPO_ROOT
from algoperf.tuning import yaml_error_message

CONF_DIR = REPO_ROOT / "conf"
GROUPS = ("hardware", "ruleset", "logger")
# Folders of the harness's own code: results must never be written into them.
CODE_DIRS = ("algoperf", "conf", "workloads", "submissions", "tests")
PLAIN_NAME = re.compile(r"[A-Za-z0-9_-][A-Za-z0-9._-]*")


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
    base = _load_conf(CONF_DIR / f"{config_name}.yaml")
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
    except yaml.YAMLError as e:  # OmegaConf refuses a duplicate key, with PyYAML's error
        raise AlgoperfError(yaml_error_message(e, "a config file")) from None
    missing = sorted(OmegaConf.missing_keys(cfg))
    if missing:
        raise AlgoperfError(
            f"missing required setting(s): {', '.join(missing)}, e.g. "
            "`algoperf run workload=fashion_mnist submission=adamw`."
        )
    if config_name == "config":
        check_settings(cfg)
    return cfg


def _load_conf(path: Path) -> DictConfig:
    try:
        return OmegaConf.load(path)  # type: ignore[return-value]
    except yaml.YAMLError as e:
        raise AlgoperfError(yaml_error_message(e, path)) from None


# ---- the run settings: every top-level scalar key of conf/config.yaml, checked at the door -------

PositiveInt = Annotated[int, Field(gt=0)]
FIXES = {
    "workload": "give a registry name (see `algoperf list`), e.g. workload=fashion_mnist",
    "submission": "give a registry name or a submission folder, e.g. submission=adamw",
    "framework": "give framework=torch or framework=jax",
    "study": "give a non-negative integer, e.g. study=0",
    "trial": "give a non-negative integer, e.g. trial=0, or trial=null for the search space's defaults",
    "seed": "give a non-negative integer, e.g. seed=0",
    "sweep": "give a plain folder name (letters, digits, '.', '_', '-'; no '/', not starting "
    "with '.'), e.g. sweep=my_sweep",
    "results_dir": "give a folder of its own for results (not /, your home folder, the repository "
    "root or the harness's code), e.g. results_dir=results",
    "data_dir": "give an existing folder, or data_dir=null",
    "hparams": "set one hyperparameter with hparams.NAME=VALUE",
    "max_submission_time_s": "give a finite positive number of seconds, e.g. max_submission_time_s=300, "
    "or null for the hardware profile's budget",
    "eval_every_steps": "give a positive integer, e.g. eval_every_steps=100, "
    "or null for the hardware profile's schedule",
    "max_steps": "give a positive integer, e.g. max_steps=100, or null for no cap",
    "step_hint": "give a positive integer, e.g. step_hint=1000, or null for the workload's step hint",
    "threads": "give a positive integer, e.g. threads=1, or null for the hardware profile's default",
    "stop_at_target": "give stop_at_target=true or stop_at_target=false",
    "overwrite": "give overwrite=true or overwrite=false",
    "progress": "give progress=true or progress=false",
}


class RunSettings(BaseModel):
    """The composed configuration's scalar settings. Strict: Hydra has already parsed each
    value (`study=1` is an int, `study=1.5` a float, `overwrite=yes` a string), so nothing is
    coerced and a wrong type is refused."""

    model_config = ConfigDict(strict=True, extra="ignore")

    workload: str
    submission: str
    framework: Literal["torch", "jax"] = "torch"
    study: int = Field(default=0, ge=0)
    trial: int | None = Field(default=None, ge=0)
    seed: int = Field(default=0, ge=0)
    sweep: str = "default"
    results_dir: str = "results"
    data_dir: str | None = None
    hparams: dict[str, Any] = Field(default_factory=dict)
    max_submission_time_s: float | None = Field(default=None, gt=0, allow_inf_nan=False)
    eval_every_steps: PositiveInt | None = None
    max_steps: PositiveInt | None = None
    step_hint: PositiveInt | None = None
    threads: PositiveInt | None = None
    stop_at_target: bool = True
    overwrite: bool = False
    progress: bool = True

    @field_validator("workload", "submission", "sweep", "results_dir", "data_dir", mode="before")
    @classmethod
    def _number_as_name(cls, value: Any) -> Any:
        # Hydra parses `sweep=2024` as an int; as a name or a folder it is the text.
        return str(value) if isinstance(value, (int, float)) and not isinstance(value, bool) else value

    @field_validator("workload", "sweep")
    @classmethod
    def _plain_name(cls, value: str) -> str:
        # Both become folder names under results_dir: nothing that climbs out of it or hides.
        if not PLAIN_NAME.fullmatch(value) or ".." in value:
            raise ValueError("is not a plain name (it becomes a folder under results_dir)")
        return value

    @field_validator("submission")
    @classmethod
    def _not_empty(cls, value: str) -> str:
        if not value.strip():
            raise ValueError("is empty")
        return value

    @field_validator("results_dir")
    @classmethod
    def _results_dir(cls, value: str) -> str:
        return check_results_dir(value)

    @field_validator("data_dir")
    @classmethod
    def _data_dir(cls, value: str | None) -> str | None:
        if value is not None and not Path(value).is_dir():
            raise ValueError("is not an existing folder")
        return value


def check_results_dir(value: str) -> str:
    """results_dir may be any folder but one whose trial folders would land somewhere harmful:
    an existing file, /, the home folder itself, the repository root or the harness's code."""
    if not value.strip():
        raise ValueError("is empty")
    if value.startswith("~"):
        raise ValueError("starts with '~', which is not expanded here (give the full path)")
    path = Path(value).resolve()
    if path.is_file():
        raise ValueError("is an existing file, not a folder")
    if path == Path(path.anchor):
        raise ValueError("is the filesystem root")
    if path == Path.home().resolve():
        raise ValueError("is your home folder itself")
    if path == REPO_ROOT:
        raise ValueError("is the repository root itself")
    for name in CODE_DIRS:
        code = REPO_ROOT / name
        if path == code or code in path.parents:
            raise ValueError(f"is inside the harness's code ({name}/)")
    return value


def _shown(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true" if value else "false"
    return repr(value) if isinstance(value, str) else str(value)


def settings_problems(error: ValidationError) -> list[str]:
    """One line per problem of a ValidationError: the key, the value given, what is wrong and
    the fix."""
    lines = []
    for problem in error.errors():
        key = str(problem["loc"][0]) if problem["loc"] else "?"
        value = _shown(problem.get("input"))
        if problem["type"] == "value_error":
            what = str(problem.get("ctx", {}).get("error", problem["msg"]))
        else:
            what = problem["msg"][0].lower() + problem["msg"][1:]
        lines.append(f"{key}={value}: {what}; {FIXES.get(key, 'see conf/config.yaml')}.")
    return list(dict.fromkeys(lines))


def check_settings(cfg: DictConfig | dict[str, Any]) -> RunSettings:
    """Validate the composed configuration's top-level settings; AlgoperfError, one line per
    problem, before anything is written."""
    values = {k: v for k, v in to_dict(cfg).items() if k in RunSettings.model_fields}
    try:
        return RunSettings(**values)
    except ValidationError as e:
        raise AlgoperfError("\n".join(settings_problems(e))) from None


def to_dict(cfg: DictConfig | dict[str, Any]) -> dict[str, Any]:
    if isinstance(cfg, DictConfig):
        return OmegaConf.to_container(cfg, resolve=True)  # type: ignore[return-value]
    return dict(cfg)
