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

from algoperf.errors import AlgoperfError

RULESETS = ("external", "self", "calibrated")
RANGE_KEYS = {"min", "max", "scaling", "default"}
CHOICE_KEYS = {"choices", "default"}


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
        try:
            raw = yaml.safe_load(path.read_text())
        except yaml.YAMLError as e:
            raise AlgoperfError(f"{path} is not valid YAML: {e}. Fix the syntax.") from None
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
    params = {p.name: p for p in space.params}
    for key, value in overrides.items():
        if params and key not in params:
            from algoperf.errors import did_you_mean

            raise AlgoperfError(
                f"hparams.{key} is not in the search space {space.source}." + did_you_mean(key, params)
            )
        numeric = isinstance(value, (int, float)) and not isinstance(value, bool)
        if key in params and params[key].kind == "range" and not numeric:
            param = params[key]
            example = param.default if param.default is not None else param.low
            raise AlgoperfError(
                f"hparams.{key}={value!r}: {key} is a number in the search space {space.source} "
                f"(range {param.low}..{param.high}); give a number, e.g. hparams.{key}={example}."
            )
        values[key] = value
    return values
