"""Search spaces, the seeded scrambled-Halton sampler, rulesets and seed derivation.

A search space is `search_space.yaml`, a flat mapping of hyperparameter name to one of:

    learning_rate:   {min: 1.0e-4, max: 1.0e-2, scaling: log, default: 2.0e-3}
    warmup_fraction: {choices: [0.02, 0.05, 0.1], default: 0.05}
    label_smoothing: 0.1        # a fixed value, not tuned

Trial k of a study uses the k-th point of a Halton sequence scrambled with the study's seed,
so studies explore different points and every study covers the space evenly.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import yaml

from algoperf.errors import AlgoperfError, did_you_mean

RULESETS = ("external", "self", "calibrated")
RANGE_KEYS = {"min", "max", "scaling", "default"}
CHOICE_KEYS = {"choices", "default"}


class UniqueKeyLoader(yaml.SafeLoader):
    """PyYAML's safe loader, except that a key given twice in one mapping is an error (PyYAML
    keeps the last silently, so a second `learning_rate:` line would quietly win)."""

    def construct_mapping(self, node: yaml.MappingNode, deep: bool = False) -> dict[Any, Any]:
        seen: dict[Any, int] = {}
        for key_node, _ in node.value:
            if key_node.tag == "tag:yaml.org,2002:merge":  # `<<: *anchor` may override keys
                continue
            key = self.construct_object(key_node, deep=True)
            try:
                first = seen.get(key)
            except TypeError:  # an unhashable key: SafeLoader reports it
                continue
            if first is not None:
                raise yaml.constructor.ConstructorError(
                    "while constructing a mapping",
                    node.start_mark,
                    f"found duplicate key {key!r} (first given at line {first})",
                    key_node.start_mark,
                )
            seen[key] = key_node.start_mark.line + 1
        return super().construct_mapping(node, deep=deep)


def yaml_error_message(error: yaml.YAMLError, path: str | Path) -> str:
    """One line naming the file, the line and the problem of a YAML error (PyYAML's own text
    spans several lines)."""
    mark = getattr(error, "problem_mark", None) or getattr(error, "context_mark", None)
    problem = getattr(error, "problem", None) or str(error).splitlines()[0]
    name = getattr(mark, "name", None)
    where = name if name and not name.startswith("<") else str(path)
    line = f", line {mark.line + 1}" if mark is not None else ""
    if "duplicate key" in problem:
        fix = "give each key once in a mapping: delete or rename one of them"
    else:
        fix = "fix the YAML syntax there"
    return f"{where}{line}: {problem}; {fix}."


def load_yaml(path: str | Path) -> Any:
    """Parse a YAML file with UniqueKeyLoader; a syntax error or a duplicate key is an
    AlgoperfError naming the file and the line."""
    path = Path(path)
    try:
        with open(path, encoding="utf-8") as f:
            return yaml.load(f, Loader=UniqueKeyLoader)  # a SafeLoader subclass
    except yaml.YAMLError as e:
        raise AlgoperfError(yaml_error_message(e, path)) from None


def derive_seed(root_seed: int, *keys: int | str) -> int:
    """A 31-bit seed from a root seed and a path of keys (e.g. "trial", study, trial).

    numpy's SeedSequence hashes the whole path, so seeds of different paths are independent
    and distinct paths give distinct seeds with overwhelming probability.
    """
    entropy = [int(root_seed)] + [
        int.from_bytes(k.encode(), "little") if isinstance(k, str) else int(k) for k in keys
    ]
    return int(np.random.SeedSequence(entropy).generate_state(1)[0] & 0x7FFFFFFF)


@dataclass(frozen=True)
class Hyperparameter:
    name: str
    kind: str  # "range" | "choice" | "fixed"
    low: float | None = None
    high: float | None = None
    scaling: str = "linear"
    choices: tuple[Any, ...] = ()
    default: Any = None

    def from_unit(self, u: float) -> Any:
        """Map u in [0, 1) to a value of this hyperparameter."""
        if self.kind == "range":
            assert self.low is not None and self.high is not None
            if self.scaling == "log":
                return float(math.exp(math.log(self.low) + u * (math.log(self.high) - math.log(self.low))))
            return float(self.low + u * (self.high - self.low))
        if self.kind == "choice":
            return self.choices[min(int(u * len(self.choices)), len(self.choices) - 1)]
        return self.default


class SearchSpace:
    """Parsed, validated `search_space.yaml`."""

    def __init__(self, params: list[Hyperparameter], source: str = "<search space>"):
        self.params = params
        self.source = source

    @property
    def tunable(self) -> list[Hyperparameter]:
        return [p for p in self.params if p.kind != "fixed"]

    @classmethod
    def from_yaml(cls, path: str | Path) -> SearchSpace:
        path = Path(path)
        if not path.is_file():
            return cls([], str(path))
        raw = load_yaml(path)
        return cls.from_dict(raw or {}, str(path))

    @classmethod
    def from_dict(cls, raw: Any, source: str = "<search space>") -> SearchSpace:
        if not isinstance(raw, dict):
            raise AlgoperfError(
                f"{source}: a search space is a mapping of hyperparameter names to ranges, "
                f"choices or fixed values; got {type(raw).__name__}."
            )
        return cls([_parse_one(name, spec, source) for name, spec in raw.items()], source)

    def defaults(self) -> dict[str, Any]:
        """The submission's best known point; a hyperparameter with no default takes the
        first quasi-random point of study 0's sequence."""
        first = None
        values = {}
        for p in self.params:
            if p.default is not None:
                values[p.name] = p.default
            else:
                if first is None:
                    first = self.sample(0, study_seed=0)
                values[p.name] = first[p.name]
        return values

    def sample(self, trial: int, study_seed: int) -> dict[str, Any]:
        """The `trial`-th point (0-based) of the study's scrambled Halton sequence."""
        return self.sample_many(trial + 1, study_seed)[trial]

    def sample_many(self, n: int, study_seed: int) -> list[dict[str, Any]]:
        tunable = self.tunable
        if tunable:
            from scipy.stats import qmc  # imported here: scipy.stats takes ~1 s to import

            sampler = qmc.Halton(d=len(tunable), scramble=True, seed=study_seed)
            points = sampler.random(n)
        else:
            points = np.zeros((n, 0))
        out = []
        for row in points:
            values = {p.name: p.default for p in self.params if p.kind == "fixed"}
            values.update({p.name: p.from_unit(float(u)) for p, u in zip(tunable, row, strict=True)})
            out.append({p.name: values[p.name] for p in self.params})
        return out


def _parse_one(name: Any, spec: Any, source: str) -> Hyperparameter:
    where = f"{source}: hyperparameter {name!r}"
    if not isinstance(name, str) or not name.isidentifier():
        raise AlgoperfError(f"{where}: names must be Python identifiers (e.g. learning_rate).")
    if not isinstance(spec, dict):
        if isinstance(spec, (list, tuple)):
            raise AlgoperfError(f"{where}: a list is ambiguous; write {{choices: {list(spec)}}}.")
        return Hyperparameter(name, "fixed", default=spec)
    keys = set(spec)
    if "choices" in spec:
        unknown = keys - CHOICE_KEYS
        if unknown:
            raise AlgoperfError(
                f"{where}: unknown key(s) {sorted(unknown)}; choices take {sorted(CHOICE_KEYS)}."
            )
        choices = spec["choices"]
        if not isinstance(choices, list) or not choices:
            raise AlgoperfError(f"{where}: `choices` must be a non-empty list.")
        default = spec.get("default")
        if default is not None and default not in choices:
            raise AlgoperfError(f"{where}: default {default!r} is not one of the choices {choices}.")
        return Hyperparameter(name, "choice", choices=tuple(choices), default=default)
    if "min" in spec or "max" in spec:
        unknown = keys - RANGE_KEYS
        if unknown:
            raise AlgoperfError(
                f"{where}: unknown key(s) {sorted(unknown)}; ranges take {sorted(RANGE_KEYS)}."
            )
        if "min" not in spec or "max" not in spec:
            raise AlgoperfError(f"{where}: a range needs both `min` and `max`.")
        try:
            low, high = float(spec["min"]), float(spec["max"])
        except (TypeError, ValueError):
            raise AlgoperfError(f"{where}: `min` and `max` must be numbers.") from None
        if not low < high:
            raise AlgoperfError(f"{where}: `min` ({low}) must be below `max` ({high}).")
        scaling = spec.get("scaling", "linear")
        if scaling not in ("log", "linear"):
            raise AlgoperfError(f"{where}: scaling must be `log` or `linear`, not {scaling!r}.")
        if scaling == "log" and low <= 0:
            raise AlgoperfError(f"{where}: log scaling needs `min` > 0 (got {low}).")
        default = spec.get("default")
        if default is not None:
            if not isinstance(default, (int, float)) or not low <= float(default) <= high:
                raise AlgoperfError(f"{where}: default {default!r} is outside [{low}, {high}].")
            default = float(default)
        return Hyperparameter(name, "range", low=low, high=high, scaling=scaling, default=default)
    if keys == {"value"}:
        return Hyperparameter(name, "fixed", default=spec["value"])
    raise AlgoperfError(
        f"{where}: expected {{min, max, scaling, default}}, {{choices, default}} or a plain value; "
        f"got keys {sorted(keys)}."
    )


def trial_hparams(
    space: SearchSpace,
    ruleset: str,
    root_seed: int,
    study: int,
    trial: int | None,
    overrides: dict[str, Any],
) -> dict[str, Any]:
    """The hyperparameters of one trial under a ruleset.

    `trial=None` means the search space's defaults (the submission's best known point).
    Under `self` the submission tunes itself: it gets only the defaults/fixed values.
    """
    if ruleset not in RULESETS:
        raise AlgoperfError(f"unknown ruleset {ruleset!r}; valid: {', '.join(RULESETS)}.")
    if trial is None or ruleset in ("self", "calibrated"):
        values = space.defaults()
    else:
        values = space.sample(trial, derive_seed(root_seed, "study", study))
    for key, value in overrides.items():
        if space.params:  # a submission without a search space takes any name
            _check_name_and_number(space, key, value)
        values[key] = value
    return values


def _check_name_and_number(space: SearchSpace, key: str, value: Any) -> Hyperparameter:
    """An override names a hyperparameter of the space; a range takes a number."""
    params = {p.name: p for p in space.params}
    if key not in params:
        raise AlgoperfError(
            f"hparams.{key} is not in the search space {space.source}." + did_you_mean(key, params)
        )
    param = params[key]
    if param.kind == "range" and not _is_number(value):
        example = param.default if param.default is not None else param.low
        raise AlgoperfError(
            f"hparams.{key}={value!r}: {key} is a number in the search space {space.source} "
            f"(range {param.low}..{param.high}); give a number, e.g. hparams.{key}={example}."
        )
    return param


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def _same_value(a: Any, b: Any) -> bool:
    """Equal and of the same kind: True is not the choice 1, nor "0.1" the choice 0.1."""
    if isinstance(a, bool) or isinstance(b, bool):
        return isinstance(a, bool) and isinstance(b, bool) and a == b
    if _is_number(a) and _is_number(b):
        return a == b
    return type(a) is type(b) and a == b


def _kind(value: Any) -> str:
    if isinstance(value, bool):
        return "a boolean (true/false)"
    if isinstance(value, int):
        return "an integer"
    if isinstance(value, float):
        return "a number"
    if isinstance(value, str):
        return "a string"
    return f"a {type(value).__name__}"


def check_overrides(space: SearchSpace, overrides: dict[str, Any]) -> None:
    """Refuse `hparams.NAME=value` overrides that the search space does not allow, before a
    trial starts: an unknown name, a value of the wrong type, a number outside the range, a
    value that is not one of the choices. A submission without a search space takes any name."""
    if not space.params:
        return
    for key, value in overrides.items():
        param = _check_name_and_number(space, key, value)
        shown = f"hparams.{key}={value!r}"
        if param.kind == "range":
            assert param.low is not None and param.high is not None
            if not (math.isfinite(value) and param.low <= value <= param.high):
                example = param.default if param.default is not None else param.low
                raise AlgoperfError(
                    f"{shown} is outside the range [{param.low}, {param.high}] of {key} in the "
                    f"search space {space.source}; give a value in it (e.g. hparams.{key}={example}) "
                    "or widen the range there."
                )
        elif param.kind == "choice":
            if not any(_same_value(value, c) for c in param.choices):
                example = param.default if param.default is not None else param.choices[0]
                raise AlgoperfError(
                    f"{shown} is not one of the choices {list(param.choices)} of {key} in the search "
                    f"space {space.source}; pick one (e.g. hparams.{key}={example}) or add it there."
                )
        elif param.default is not None:  # a fixed value: an override keeps its type
            fixed = param.default
            same = isinstance(value, bool) == isinstance(fixed, bool) and (
                isinstance(fixed, float) and _is_number(value) or type(value) is type(fixed)
            )
            if not same:
                raise AlgoperfError(
                    f"{shown}: {key} is fixed to {fixed!r} ({_kind(fixed)}) in the search space "
                    f"{space.source}; give {_kind(fixed)}, e.g. hparams.{key}={fixed!r}."
                )


def check_sweep_overrides(sources: dict[str, Any], overrides: dict[str, Any]) -> None:
    """check_overrides against every submission of a sweep (`sources`: name -> SubmissionSource),
    so a bad override is refused before any trial is launched."""
    for source in sources.values():
        check_overrides(SearchSpace.from_yaml(source.search_space_path), overrides)
