"""The configuration schema: one dataclass per config node, registered in Hydra's ConfigStore.

`RunConfig` is the schema of conf/config.yaml and, through its typed fields, of the groups
merged into it (`Ruleset`: conf/ruleset/*.yaml, `HardwareConfig`: conf/hardware/*.yaml,
`LoggerConfig`: conf/logger/*.yaml); `SweepConfig` is the schema of a sweep's own settings.
While composing, OmegaConf refuses an unknown key or a value of the wrong type; each class's
`__post_init__` (run by `OmegaConf.to_object`, and by a direct construction in Python) checks
ranges, names and folders. Every problem is one line: the key, the value, what is wrong and the
fix, taken from the class's FIXES table (algoperf.config words OmegaConf's errors the same way).

To add a key: a field here (type and default), its fix in FIXES, a check in `__post_init__` if
its range is narrower than its type, and the key with a comment in conf/config.yaml.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar

from hydra.core.config_store import ConfigStore
from omegaconf import MISSING

from algoperf.errors import AlgoperfError
from algoperf.frameworks import FRAMEWORKS
from algoperf.plugins import REPO_ROOT
from algoperf.tuning import RULESETS

# Folders of the harness's own code: results must never be written into them.
CODE_DIRS = ("algoperf", "conf", "workloads", "submissions", "tests")
PLAIN_NAME = re.compile(r"[A-Za-z0-9_-][A-Za-z0-9._-]*")

# A check says what is wrong with a value, or None when nothing is.
Check = Callable[[Any], "str | None"]


# ---- the wording of a problem ---------------------------------------------------------------------


def shown(value: Any) -> str:
    """A value as the user would type it on the command line."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true" if value else "false"
    return repr(value) if isinstance(value, str) else str(value)


def problem_line(key: str, value: Any, what: str, fix: str | None) -> str:
    """`key=value: what is wrong; the fix.`"""
    return f"{key}={shown(value)}: {what}; {fix or 'see conf/config.yaml'}."


def check_fields(node: Any, checks: dict[str, Check]) -> None:
    """Run each field's check; one AlgoperfError naming every problem, one line each."""
    lines = []
    for key, check in checks.items():
        value = getattr(node, key)
        what = check(value)
        if what:
            lines.append(problem_line(node.PREFIX + key, value, what, node.FIXES.get(key)))
    if lines:
        raise AlgoperfError("\n".join(lines))


def fix_for(schema: Any, key: str) -> str | None:
    """The fix a schema class gives for one of its keys (None: not a schema class, or no fix)."""
    return getattr(schema, "FIXES", {}).get(key)


# ---- the checks -----------------------------------------------------------------------------------


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def non_negative_int(value: Any) -> str | None:
    if not _is_int(value):
        return "is not an integer"
    return "is negative" if value < 0 else None


def positive_int(value: Any) -> str | None:
    if not _is_int(value):
        return "is not an integer"
    return "is not positive" if value <= 0 else None


def finite_positive(value: Any) -> str | None:
    if not _is_number(value):
        return "is not a number"
    if not math.isfinite(value):
        return "is not a finite number"
    return "is not positive" if value <= 0 else None


def finite_non_negative(value: Any) -> str | None:
    if not _is_number(value):
        return "is not a number"
    if not math.isfinite(value):
        return "is not a finite number"
    return "is negative" if value < 0 else None


def optional(check: Check) -> Check:
    """null, or a value that passes `check`."""
    return lambda value: None if value is None else check(value)


def switch(value: Any) -> str | None:
    return None if isinstance(value, bool) else "is not true or false"


def text(value: Any) -> str | None:
    if not isinstance(value, str):
        return "is not text"
    return "is empty" if not value.strip() else None


def plain_name(value: Any) -> str | None:
    """A name that becomes a folder under results_dir: nothing that climbs out of it or hides."""
    if not isinstance(value, str) or not PLAIN_NAME.fullmatch(value) or ".." in value:
        return "is not a plain name (it becomes a folder under results_dir)"
    return None


def one_of(*choices: str) -> Check:
    return lambda value: None if value in choices else f"is not one of {', '.join(choices)}"


def mapping(value: Any) -> str | None:
    return None if isinstance(value, dict) else "is not a mapping"


def instance_of(cls: type, what: str) -> Check:
    return lambda value: None if isinstance(value, cls) else f"is not {what}"


def existing_folder(value: Any) -> str | None:
    if not isinstance(value, str) or not Path(value).is_dir():
        return "is not an existing folder"
    return None


def search_space_file(value: Any) -> str | None:
    """An existing search space file, checked when the configuration is composed so that a
    mistyped path stops a run or a sweep before anything starts."""
    what = text(value)
    if what:
        return what
    if Path(value).suffix not in (".yaml", ".yml", ".json"):
        return "is not a .yaml, .yml or .json file"
    return None if Path(value).is_file() else "is not an existing file"


def results_folder(value: Any) -> str | None:
    """results_dir may be any folder but one whose trial folders would land somewhere harmful:
    an existing file, /, the home folder itself, the repository root or the harness's code."""
    what = text(value)
    if what:
        return what
    if value.startswith("~"):
        return "starts with '~', which is not expanded here (give the full path)"
    path = Path(value).resolve()
    if path.is_file():
        return "is an existing file, not a folder"
    if path == Path(path.anchor):
        return "is the filesystem root"
    if path == Path.home().resolve():
        return "is your home folder itself"
    if path == REPO_ROOT:
        return "is the repository root itself"
    for name in CODE_DIRS:
        code = REPO_ROOT / name
        if path == code or code in path.parents:
            return f"is inside the harness's code ({name}/)"
    return None


def each(check: Check, empty: str = "is empty") -> Check:
    """A non-empty list whose every item passes `check`."""

    def check_list(value: Any) -> str | None:
        if not isinstance(value, list):
            return "is not a list"
        if not value:
            return empty
        for item in value:
            what = check(item)
            if what:
                return f"{shown(item)} {what}"
        return None

    return check_list


# ---- the groups -----------------------------------------------------------------------------------


@dataclass
class Ruleset:
    """conf/ruleset/*.yaml: how hyperparameters are chosen and what budget a trial gets."""

    PREFIX: ClassVar[str] = "ruleset."
    FIXES: ClassVar[dict[str, str]] = {
        "name": f"give one of {', '.join(RULESETS)} (ruleset=NAME picks conf/ruleset/NAME.yaml)",
        "num_studies": "give a positive integer, e.g. ruleset.num_studies=3",
        "num_trials": "give a positive integer, e.g. ruleset.num_trials=5",
        "self_tuning_budget_factor": "give a finite positive number, e.g. "
        "ruleset.self_tuning_budget_factor=1.5",
    }

    name: str = "external"
    num_studies: int = 3
    num_trials: int = 5
    # Self-tuning rulesets (self, calibrated) have no search and get this many budgets.
    self_tuning_budget_factor: float = 1.5

    def __post_init__(self) -> None:
        check_fields(
            self,
            {
                "name": one_of(*RULESETS),
                "num_studies": positive_int,
                "num_trials": positive_int,
                "self_tuning_budget_factor": finite_positive,
            },
        )

    @property
    def self_tuning(self) -> bool:
        return self.name != "external"

    def budget_s(self, profile_budget_s: float, override_s: float | None = None) -> float:
        """A trial's submission-time budget: an explicit override as given, else the hardware
        profile's budget, times the self-tuning factor for self-tuning rulesets."""
        if override_s:
            return float(override_s)
        return float(profile_budget_s) * (self.self_tuning_budget_factor if self.self_tuning else 1.0)


@dataclass
class WatchdogConfig:
    """A sweep's trial is killed after wall_time_factor x budget + grace_s of wall time (status
    timeout), or when its processes hold more than memory_limit_gib (status failed)."""

    PREFIX: ClassVar[str] = "hardware.watchdog."
    FIXES: ClassVar[dict[str, str]] = {
        "wall_time_factor": "give a finite positive number, e.g. wall_time_factor: 3.0",
        "grace_s": "give a finite number of seconds >= 0, e.g. grace_s: 300",
        "memory_limit_gib": "give a finite positive number, e.g. memory_limit_gib: 8, or null for no limit",
    }

    wall_time_factor: float = 3.0
    grace_s: float = 300.0
    memory_limit_gib: float | None = None

    def __post_init__(self) -> None:
        check_fields(
            self,
            {
                "wall_time_factor": finite_positive,
                "grace_s": finite_non_negative,
                "memory_limit_gib": optional(finite_positive),
            },
        )


@dataclass
class HardwareConfig:
    """conf/hardware/*.yaml: a hardware profile. `common` and `workloads` stay open maps
    (algoperf.hardware.workload_settings reads an entry: size, budget, eval schedule,
    per-framework overrides)."""

    PREFIX: ClassVar[str] = "hardware."
    FIXES: ClassVar[dict[str, str]] = {
        "name": "give the profile a name (its file name), e.g. name: cpu",
        "description": "describe the machine in words",
        "threads_per_trial": "give a positive integer, e.g. threads_per_trial: 1, or null for all cores",
        "common": "give a mapping of settings every workload shares, e.g. common: {eval_test: final}",
        "workloads": "give a mapping of workload name to its settings (see conf/hardware/cpu.yaml)",
        "watchdog": "give wall_time_factor, grace_s and memory_limit_gib (see conf/hardware/cpu.yaml)",
    }

    name: str = MISSING
    description: str = ""
    threads_per_trial: int | None = None
    common: dict[str, Any] = field(default_factory=dict)
    workloads: dict[str, Any] = field(default_factory=dict)
    watchdog: WatchdogConfig = field(default_factory=WatchdogConfig)

    def __post_init__(self) -> None:
        check_fields(
            self,
            {
                "name": text,
                "threads_per_trial": optional(positive_int),
                "common": mapping,
                "workloads": mapping,
                "watchdog": instance_of(WatchdogConfig, "a watchdog setting"),
            },
        )


@dataclass
class LoggerConfig:
    """conf/logger/*.yaml: where a trial is mirrored besides its results folder."""

    PREFIX: ClassVar[str] = "logger."
    FIXES: ClassVar[dict[str, str]] = {
        "name": "give logger=none or logger=wandb",
        "project": "give a W&B project name, e.g. logger.project=algoperf",
        "entity": "give a W&B entity, or null for your default",
        "mode": "give logger.mode=offline or logger.mode=online",
        "dir": "give a folder for W&B's files, or null for its default",
    }

    name: str = "none"
    project: str = "algoperf"
    entity: str | None = None
    mode: str = "offline"
    dir: str | None = None

    def __post_init__(self) -> None:
        check_fields(self, {"name": text})


# ---- a run ----------------------------------------------------------------------------------------


@dataclass
class RunConfig:
    """One trial's configuration (`algoperf run`, each trial of a sweep, the Python API)."""

    PREFIX: ClassVar[str] = ""
    EXAMPLE: ClassVar[str] = "algoperf run workload=fashion_mnist submission=adamw"
    FIXES: ClassVar[dict[str, str]] = {
        "workload": "give a registry name (see `algoperf list`), e.g. workload=fashion_mnist",
        "submission": "give a registry name or a submission folder, e.g. submission=adamw",
        "framework": "give framework=torch or framework=jax, or framework=null for the submission's own",
        "study": "give a non-negative integer, e.g. study=0",
        "trial": "give a non-negative integer, e.g. trial=0, or trial=null for the search space's defaults",
        "seed": "give a non-negative integer, e.g. seed=0",
        "sweep": "give a plain folder name (letters, digits, '.', '_', '-'; no '/', not starting "
        "with '.'), e.g. sweep=my_sweep",
        "results_dir": "give a folder of its own for results (not /, your home folder, the repository "
        "root or the harness's code), e.g. results_dir=results",
        "data_dir": "give an existing folder, or data_dir=null",
        "hparams": "set one hyperparameter with hparams.NAME=VALUE",
        "search_space": "give the path of a search_space.yaml or tuning_search_space.json, "
        "or search_space=null for the submission's own",
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
        "hardware": "pick a profile with hardware=NAME (conf/hardware/NAME.yaml)",
        "ruleset": f"pick one with ruleset=NAME ({', '.join(RULESETS)})",
        "logger": "pick one with logger=none or logger=wandb",
    }

    workload: str = MISSING  # registry name
    submission: str = MISSING  # registry name or path
    framework: str | None = None  # None: the submission's own framework (torch when it has both)
    study: int = 0
    trial: int | None = None  # None: the search space's defaults
    seed: int = 0  # the root seed: study, trial and data-order seeds derive from it
    sweep: str = "default"
    results_dir: str = "results"
    data_dir: str | None = None
    hparams: dict[str, Any] = field(default_factory=dict)  # overrides of single values
    search_space: str | None = None  # a search space file; None: the submission's own
    max_submission_time_s: float | None = None  # overrides the profile's budget
    eval_every_steps: int | None = None  # overrides the profile's eval schedule
    max_steps: int | None = None  # hard step cap (tests); reaching it ends as budget_exhausted
    stop_at_target: bool = True  # False: train on to the budget/max_steps (target setting)
    step_hint: int | None = None  # overrides the size's step hint (target setting)
    threads: int | None = None
    overwrite: bool = False
    progress: bool = True
    hardware: HardwareConfig = MISSING
    ruleset: Ruleset = field(default_factory=Ruleset)
    logger: LoggerConfig = field(default_factory=LoggerConfig)

    def __post_init__(self) -> None:
        check_fields(
            self,
            {
                "workload": plain_name,
                "submission": text,
                "framework": optional(one_of(*FRAMEWORKS)),
                "study": non_negative_int,
                "trial": optional(non_negative_int),
                "seed": non_negative_int,
                "sweep": plain_name,
                "results_dir": results_folder,
                "data_dir": optional(existing_folder),
                "hparams": mapping,
                "search_space": optional(search_space_file),
                "max_submission_time_s": optional(finite_positive),
                "eval_every_steps": optional(positive_int),
                "max_steps": optional(positive_int),
                "step_hint": optional(positive_int),
                "threads": optional(positive_int),
                "stop_at_target": switch,
                "overwrite": switch,
                "progress": switch,
                "hardware": instance_of(HardwareConfig, "a hardware profile"),
                "ruleset": instance_of(Ruleset, "a ruleset"),
                "logger": instance_of(LoggerConfig, "a logger"),
            },
        )
        if self.framework is None:
            self.framework = _submission_framework(self.submission)


def _submission_framework(submission: str) -> str:
    """The submission's own framework: an AlgoPerf submission's from its imports, the only one
    a submission has, or torch for one with both. A submission that cannot be found is named
    as such when the trial resolves it; until then, torch."""
    from algoperf.errors import AlgoperfError
    from algoperf.plugins import find_submission

    try:
        return find_submission(submission).default_framework
    except AlgoperfError:
        return "torch"


# ---- a sweep --------------------------------------------------------------------------------------


@dataclass
class SweepConfig:
    """A sweep's own settings (`algoperf sweep`); every other key goes to each trial."""

    PREFIX: ClassVar[str] = ""
    EXAMPLE: ClassVar[str] = "algoperf sweep workloads=[fashion_mnist] submissions=[adamw,nadamw]"
    FIXES: ClassVar[dict[str, str]] = {
        "workloads": "give registry names, e.g. workloads=[fashion_mnist]",
        "submissions": "give registry names or submission folders, e.g. submissions=[adamw,nadamw]",
        "frameworks": "give frameworks=[torch], [jax] or [torch,jax]",
        "num_studies": "give a positive integer, e.g. num_studies=3, or leave it out for the ruleset's",
        "num_trials": "give a positive integer, e.g. num_trials=5, or leave it out for the ruleset's",
        "n_jobs": "give a positive integer, e.g. n_jobs=2, or leave it out for cores / threads_per_trial",
        "new_sweep": "give new_sweep=true or new_sweep=false",
    }

    workloads: list[str] = MISSING
    submissions: list[str] = MISSING
    frameworks: list[str] = field(default_factory=lambda: ["torch"])
    num_studies: int | None = None  # None: the ruleset's
    num_trials: int | None = None  # None: the ruleset's (self-tuning rulesets: 1)
    n_jobs: int | None = None  # trials side by side; None: cores / threads_per_trial
    new_sweep: bool = False  # run under a fresh name (<sweep>-2, ...) if the sweep exists

    def __post_init__(self) -> None:
        check_fields(
            self,
            {
                "workloads": each(plain_name),
                "submissions": each(text),
                "frameworks": each(one_of(*FRAMEWORKS)),
                "num_studies": optional(positive_int),
                "num_trials": optional(positive_int),
                "n_jobs": optional(positive_int),
                "new_sweep": switch,
            },
        )


# conf/config.yaml lists `run_schema` first in its defaults; `sweep_schema` is composed alone.
SCHEMAS = {"run_schema": RunConfig, "sweep_schema": SweepConfig}
for _name, _node in SCHEMAS.items():
    ConfigStore.instance().store(name=_name, node=_node)
