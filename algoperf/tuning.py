"""Search spaces, the seeded scrambled-Halton sampler, rulesets and seed derivation.

A search space is `search_space.yaml`, a flat mapping of hyperparameter name to one of:

    learning_rate:   {min: 1.0e-4, max: 1.0e-2, scaling: log, default: 2.0e-3}
    warmup_fraction: {choices: [0.02, 0.05, 0.1], default: 0.05}
    label_smoothing: 0.1        # a fixed value, not tuned

Trial k of a study uses the k-th point of a Halton sequence scrambled with the study's seed,
so studies explore different points and every study covers the space evenly.

A submission written for MLCommons AlgoPerf ships `tuning_search_space.json` instead, in one of
AlgoPerf's two forms, read with AlgoPerf's meaning:

    {"learning_rate": {"min": 1e-4, "max": 1e-2, "scaling": "log"},   a space to sample
     "dropout_rate": {"feasible_points": [0.0, 0.1]}}
    [{"learning_rate": 0.0013, "nesterov": true}, {...}, ...]         fixed points

A mapping is sampled like a YAML space (AlgoPerf's own Halton draws are not reproduced). A list
is the trials themselves: trial k of every study runs point k, and a study has at most as many
trials as there are points. `load_search_space` finds a submission's file; when a folder holds
both, search_space.yaml (the harness's own format) is the one read.
"""

from __future__ import annotations

import copy
import json
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
YAML_NAME = "search_space.yaml"
JSON_NAME = "tuning_search_space.json"  # MLCommons AlgoPerf's name
JSON_RANGE_KEYS = {"min", "max", "scaling"}
JSON_CHOICE_KEYS = {"feasible_points"}


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
    # "range" | "choice" | "fixed" | "listed" (a list of fixed points gives a value per point:
    # `default` is point 0's, `choices` the distinct values in the order first listed)
    kind: str
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
    """Parsed, validated `search_space.yaml` or `tuning_search_space.json`.

    `points` is set for AlgoPerf's list form: the trials are those points, in order, and
    `params` still names every hyperparameter so overrides are checked against the names.
    """

    def __init__(
        self,
        params: list[Hyperparameter],
        source: str = "<search space>",
        points: tuple[dict[str, Any], ...] | None = None,
    ):
        self.params = params
        self.source = source
        self.points = points

    @property
    def tunable(self) -> list[Hyperparameter]:
        return [p for p in self.params if p.kind != "fixed"]

    @property
    def max_trials(self) -> int | None:
        """How many trials a study can have: one per point of a list, None (unlimited) for a
        space that is sampled."""
        return None if self.points is None else len(self.points)

    @classmethod
    def from_json(cls, path: str | Path) -> SearchSpace:
        """An AlgoPerf `tuning_search_space.json`: a mapping of names to {min, max, scaling} or
        {feasible_points}, or a non-empty list of fixed points that all have the same names."""
        path = Path(path)
        raw = load_json(path)
        source = str(path)
        if isinstance(raw, dict):
            return cls([_parse_json_one(name, spec, source) for name, spec in raw.items()], source)
        if isinstance(raw, list):
            return cls.from_points(raw, source)
        raise AlgoperfError(
            f"{source}: an AlgoPerf search space is a mapping of hyperparameter names to "
            '{"min", "max", "scaling"} or {"feasible_points"}, or a list of fixed points '
            f"(one mapping of names to values per trial); got {_json_kind(raw)}. Write one of the two."
        )

    @classmethod
    def from_points(cls, raw: list[Any], source: str = "<search space>") -> SearchSpace:
        """AlgoPerf's list form: trial k runs point k. AlgoPerf builds one namedtuple type from
        point 0's names, so every point must have exactly those names."""
        if not raw:
            raise AlgoperfError(
                f"{source}: the list of fixed points is empty; list at least one point "
                '(e.g. [{"learning_rate": 0.001}]) or give a mapping of ranges instead.'
            )
        for index, point in enumerate(raw):
            if not isinstance(point, dict):
                raise AlgoperfError(
                    f"{source}: point {index} is {_json_kind(point)}; each point of the list is a "
                    'mapping of hyperparameter names to values, e.g. {"learning_rate": 0.001}.'
                )
        names = list(raw[0])
        for name in names:
            if not isinstance(name, str) or not name.isidentifier():
                raise AlgoperfError(
                    f"{source}: hyperparameter {name!r} of point 0: names must be Python "
                    "identifiers (e.g. learning_rate)."
                )
        for index, point in enumerate(raw[1:], start=1):
            missing = [n for n in names if n not in point]
            extra = [n for n in point if n not in raw[0]]
            if missing or extra:
                differing = ([f"lacks {missing}"] if missing else []) + ([f"adds {extra}"] if extra else [])
                raise AlgoperfError(
                    f"{source}: point {index} {' and '.join(differing)} compared with point 0; every "
                    f"point must name the same hyperparameters {names}. Give each point all of them."
                )
        params = []
        for name in names:
            values: list[Any] = []
            for point in raw:
                if not any(_same_value(point[name], v) for v in values):
                    values.append(point[name])
            kind = "fixed" if len(values) == 1 else "listed"
            params.append(Hyperparameter(name, kind, choices=tuple(values), default=raw[0][name]))
        return cls(params, source, points=tuple(raw))

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
        first quasi-random point of study 0's sequence. For a list of fixed points, point 0:
        the first configuration listed is the one a run without `trial=` uses."""
        if self.points is not None:
            return self._point(0)
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
        """The `trial`-th point (0-based) of the study's scrambled Halton sequence; for a list
        of fixed points, point `trial` whatever the study (as in AlgoPerf)."""
        if self.points is not None:
            return self._point(trial)
        return self.sample_many(trial + 1, study_seed)[trial]

    def sample_many(self, n: int, study_seed: int) -> list[dict[str, Any]]:
        if self.points is not None:
            return [self._point(k) for k in range(n)]
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

    def _point(self, trial: int) -> dict[str, Any]:
        """A copy of fixed point `trial` (a caller changing a listed value must not change the
        space)."""
        assert self.points is not None
        if not 0 <= trial < len(self.points):
            raise AlgoperfError(
                f"trial {trial}: the search space {self.source} lists {len(self.points)} fixed "
                f"point(s), so a study has trials 0..{len(self.points) - 1}; give one of those, or "
                "add points to the list."
            )
        return copy.deepcopy(dict(self.points[trial]))


def load_json(path: str | Path) -> Any:
    """Parse a JSON file; a syntax error (with its line and column) or a key given twice in one
    mapping (json keeps the last silently) is an AlgoperfError naming the file."""
    path = Path(path)

    def unique(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
        out: dict[str, Any] = {}
        for key, value in pairs:
            if key in out:
                raise AlgoperfError(
                    f"{path}: found duplicate key {key!r} in one mapping; give each key once: "
                    "delete or rename one of them."
                )
            out[key] = value
        return out

    try:
        with open(path, encoding="utf-8") as f:
            return json.load(f, object_pairs_hook=unique)
    except json.JSONDecodeError as e:
        raise AlgoperfError(
            f"{path}, line {e.lineno}, column {e.colno}: {e.msg}; fix the JSON syntax there."
        ) from None
    except UnicodeDecodeError as e:
        raise AlgoperfError(f"{path}: is not UTF-8 text ({e.reason}); save it as UTF-8.") from None


def load_search_space(folder: str | Path, explicit: str | Path | None = None) -> SearchSpace:
    """A submission's search space: `explicit` (a path the user gave) if set, else the folder's
    search_space.yaml, else its tuning_search_space.json, else an empty space (every name is
    taken as an override). A folder holding both reads the YAML, the harness's own format.
    `.yaml`/`.yml` files are read as the harness's format, `.json` files as AlgoPerf's."""
    if explicit is not None:
        path = Path(explicit)
        if path.suffix not in (".yaml", ".yml", ".json"):
            raise AlgoperfError(
                f"search_space={str(explicit)!r}: a search space is a .yaml/.yml file "
                "(search_space.yaml) or a .json file (AlgoPerf's tuning_search_space.json); "
                "give the path of one."
            )
        if not path.is_file():
            raise AlgoperfError(
                f"search_space={str(explicit)!r}: no such file; give the path of a search_space.yaml "
                "or tuning_search_space.json, or search_space=null for the submission's own."
            )
        return SearchSpace.from_json(path) if path.suffix == ".json" else SearchSpace.from_yaml(path)
    folder = Path(folder)
    if (folder / YAML_NAME).is_file():
        return SearchSpace.from_yaml(folder / YAML_NAME)
    if (folder / JSON_NAME).is_file():
        return SearchSpace.from_json(folder / JSON_NAME)
    return SearchSpace([], str(folder / YAML_NAME))


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


def _json_kind(value: Any) -> str:
    """A JSON value's kind in JSON's words."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, (int, float)):
        return "a number"
    if isinstance(value, str):
        return "a string"
    return "a list" if isinstance(value, list) else "a mapping"


def _parse_json_one(name: str, spec: Any, source: str) -> Hyperparameter:
    """One entry of AlgoPerf's mapping form: {min, max, scaling} or {feasible_points}."""
    where = f"{source}: hyperparameter {name!r}"
    if not name.isidentifier():
        raise AlgoperfError(f"{where}: names must be Python identifiers (e.g. learning_rate).")
    if not isinstance(spec, dict):
        raise AlgoperfError(
            f'{where}: is {_json_kind(spec)}; AlgoPerf takes {{"min", "max", "scaling"}} or '
            '{"feasible_points": [...]}; for a fixed value write '
            f'{{"feasible_points": [{json.dumps(spec)}]}}.'
        )
    keys = set(spec)
    if "feasible_points" in spec:
        unknown = keys - JSON_CHOICE_KEYS
        if unknown:
            raise AlgoperfError(
                f"{where}: unknown key(s) {sorted(unknown)} beside feasible_points; a discrete "
                "hyperparameter takes only feasible_points: delete them."
            )
        points = spec["feasible_points"]
        if not isinstance(points, list) or not points:
            raise AlgoperfError(
                f"{where}: feasible_points is {_json_kind(points) if points != [] else 'an empty list'}; "
                "give a non-empty list of the values to choose from, e.g. [0.0, 0.1]."
            )
        return Hyperparameter(name, "choice", choices=tuple(points))
    unknown = keys - JSON_RANGE_KEYS
    if unknown:
        raise AlgoperfError(
            f"{where}: unknown key(s) {sorted(unknown)}; AlgoPerf takes "
            '{"min", "max", "scaling"} (a continuous range) or {"feasible_points"} (a discrete choice).'
        )
    missing = sorted(JSON_RANGE_KEYS - keys)
    if missing:
        raise AlgoperfError(
            f"{where}: a range needs min, max and scaling; {', '.join(missing)} missing (AlgoPerf "
            'reads all three; there is no default scaling): add them, e.g. "scaling": "linear".'
        )
    low, high, scaling = spec["min"], spec["max"], spec["scaling"]
    for key, value in (("min", low), ("max", high)):
        if not _is_number(value) or not math.isfinite(value):
            raise AlgoperfError(f"{where}: {key} is {value!r}; give a finite number.")
    if not low < high:
        raise AlgoperfError(f"{where}: min ({low}) must be below max ({high}); swap or widen them.")
    if scaling not in ("log", "linear"):
        raise AlgoperfError(f'{where}: scaling is {scaling!r}; give "log" or "linear".')
    if scaling == "log" and low <= 0:
        raise AlgoperfError(f'{where}: "log" scaling needs min > 0 (got {low}); raise min or use "linear".')
    return Hyperparameter(name, "range", low=float(low), high=float(high), scaling=scaling)


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
        elif param.kind == "listed":  # a value per fixed point: an override keeps one's type
            listed = [c for c in param.choices if c is not None]
            if listed and not any(_same_kind(value, c) for c in listed):
                kinds = " or ".join(dict.fromkeys(_kind(c) for c in listed))
                raise AlgoperfError(
                    f"{shown}: {key} is {kinds} in the fixed points of the search space "
                    f"{space.source}; give {kinds}, e.g. hparams.{key}={listed[0]!r}."
                )
        elif param.default is not None:  # a fixed value: an override keeps its type
            fixed = param.default
            if not _same_kind(value, fixed):
                raise AlgoperfError(
                    f"{shown}: {key} is fixed to {fixed!r} ({_kind(fixed)}) in the search space "
                    f"{space.source}; give {_kind(fixed)}, e.g. hparams.{key}={fixed!r}."
                )


def _same_kind(value: Any, fixed: Any) -> bool:
    """`value` may replace `fixed`: a number for a float, else the same type (True is not 1)."""
    return isinstance(value, bool) == isinstance(fixed, bool) and (
        isinstance(fixed, float) and _is_number(value) or type(value) is type(fixed)
    )


def check_sweep_overrides(
    sources: dict[str, Any], overrides: dict[str, Any], explicit: str | Path | None = None
) -> None:
    """check_overrides against every submission of a sweep (`sources`: name -> SubmissionSource;
    `explicit`: the search_space setting), so a bad override is refused before any trial is
    launched."""
    for source in sources.values():
        check_overrides(load_search_space(source.folder, explicit), overrides)
