"""Find workloads and submissions by name or path, and load their files by path.

Files are imported under unique module names (never by putting their folder on sys.path),
so a submission file called `torch.py` cannot shadow the `torch` package.
"""

from __future__ import annotations

import hashlib
import importlib.util
import inspect
import os
import sys
import traceback
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType
from typing import Any

from algoperf.errors import AlgoperfError, did_you_mean
from algoperf.spec import (
    DIAGNOSTICS_API,
    FULL_API,
    OPTIONAL_FULL_API,
    PLUGIN_API,
    STEP_KINDS,
    Submission,
    signature_problem,
)
from algoperf.workload import Workload

REPO_ROOT = Path(__file__).resolve().parent.parent
from algoperf.frameworks import FRAMEWORKS  # noqa: E402 (imports no framework)


def _search_paths(kind: str) -> list[Path]:
    """`workloads/` or `submissions/` in the repository, plus `$ALGOPERF_<KIND>_PATH` folders."""
    extra = os.environ.get(f"ALGOPERF_{kind.upper()}_PATH", "")
    return [Path(p) for p in extra.split(os.pathsep) if p] + [REPO_ROOT / kind]


def load_module(path: Path, namespace: str) -> ModuleType:
    """Import one file by path as `algoperf_plugins.<namespace>.<stem>`.

    Files next to each other share a package so a workload's `torch.py` can use relative
    imports (`from .workload import ...`).
    """
    path = path.resolve()
    package = f"algoperf_plugins.{namespace}_{hashlib.sha1(str(path.parent).encode()).hexdigest()[:10]}"
    module_name = f"{package}.{path.stem}"
    if module_name in sys.modules:
        return sys.modules[module_name]
    if "algoperf_plugins" not in sys.modules:
        sys.modules["algoperf_plugins"] = ModuleType("algoperf_plugins")
        sys.modules["algoperf_plugins"].__path__ = []
    if package not in sys.modules:
        pkg = ModuleType(package)
        pkg.__path__ = [str(path.parent)]
        sys.modules[package] = pkg
    spec = importlib.util.spec_from_file_location(module_name, path)
    if spec is None or spec.loader is None:
        raise AlgoperfError(f"cannot import {path}: not a Python file.")
    module = importlib.util.module_from_spec(spec)
    sys.modules[module_name] = module
    try:
        spec.loader.exec_module(module)
    except BaseException:
        del sys.modules[module_name]
        raise
    return module


# ---- workloads ------------------------------------------------------------------------------


def _workload_folders() -> dict[str, Path]:
    folders: dict[str, Path] = {}
    for root in _search_paths("workloads"):
        if root.is_dir():
            for folder in sorted(root.iterdir()):
                if (folder / "workload.py").is_file():
                    folders.setdefault(folder.name, folder)
    return folders


def _workload_classes(module: ModuleType) -> list[type[Workload]]:
    return [
        obj
        for obj in vars(module).values()
        if inspect.isclass(obj)
        and issubclass(obj, Workload)
        and obj.__module__ == module.__name__
        and getattr(obj, "name", None)
    ]


def list_workloads() -> dict[str, dict[str, Any]]:
    """Registry name -> {folder, variant, metric, frameworks}. Imports no framework."""
    found: dict[str, dict[str, Any]] = {}
    for folder in _workload_folders().values():
        module = load_module(folder / "workload.py", "workloads")
        frameworks = [fw for fw in FRAMEWORKS if (folder / f"{fw}.py").is_file()]
        for cls in _workload_classes(module):
            full_name = cls.name if cls.variant == "base" else f"{cls.name}_{cls.variant}"
            found[full_name] = {
                "folder": folder,
                "base": cls.name,
                "variant": cls.variant,
                "metric": cls.metric_name,
                "higher_is_better": cls.metric_higher_is_better,
                "frameworks": frameworks,
                "sizes": {k: v.target for k, v in cls.sizes.items()},
            }
    return found


def workload_class(name: str, framework: str) -> type[Workload]:
    registry = list_workloads()
    if name not in registry:
        raise AlgoperfError(f"unknown workload {name!r}." + did_you_mean(name, registry))
    entry = registry[name]
    if framework not in entry["frameworks"]:
        raise AlgoperfError(
            f"workload {name!r} has no {framework} implementation "
            f"(it has: {', '.join(entry['frameworks']) or 'none'}). Use framework="
            + (entry["frameworks"][0] if entry["frameworks"] else "...")
            + "."
        )
    module = load_module(entry["folder"] / f"{framework}.py", "workloads")
    for cls in _workload_classes(module):
        if cls.framework == framework and cls.name == entry["base"] and cls.variant == entry["variant"]:
            return cls
    raise AlgoperfError(
        f"{entry['folder'] / (framework + '.py')} defines no {framework} class for workload "
        f"{name!r}: add a subclass of the {name} workload with framework={framework!r}."
    )


def workload_source_sha256(name: str) -> str:
    """Hash of every Python file of the workload's folder: records say which code they measured."""
    folder = list_workloads()[name]["folder"]
    digest = hashlib.sha256()
    for path in sorted(folder.glob("*.py")):
        digest.update(path.name.encode())
        digest.update(path.read_bytes())
    return digest.hexdigest()


# ---- submissions ----------------------------------------------------------------------------


@dataclass
class SubmissionSource:
    """A submission's folder. `algoperf_entry` is set for a submission written for MLCommons
    AlgoPerf (its `submission.py`, or the file named by path), which runs through
    algoperf.compat; the harness's own submissions hold `torch.py` and/or `jax.py`."""

    name: str
    folder: Path
    algoperf_entry: Path | None = None
    folder_name: str | None = None  # the folder's own name, where a trial imports a copy of it

    @property
    def alias(self) -> str:
        return self.folder_name or self.folder.name

    def file(self, framework: str) -> Path:
        if self.algoperf_entry is not None:
            return self.algoperf_entry
        return self.folder / f"{framework}.py"

    @property
    def search_space_path(self) -> Path:
        return self.folder / "search_space.yaml"

    @property
    def is_algoperf(self) -> bool:
        return self.algoperf_entry is not None

    @property
    def frameworks(self) -> list[str]:
        if self.algoperf_entry is not None:
            from algoperf.compat import describe

            try:
                return [describe(self.algoperf_entry).framework]
            except AlgoperfError:  # imports both frameworks or neither: the user says which
                return list(FRAMEWORKS)
        return [fw for fw in FRAMEWORKS if self.file(fw).is_file()]

    @property
    def default_framework(self) -> str:
        """The framework a run uses when none is given: the only one, else torch."""
        frameworks = self.frameworks
        return frameworks[0] if len(frameworks) == 1 else "torch"


def list_submissions() -> dict[str, SubmissionSource]:
    from algoperf.compat import algoperf_entry

    found: dict[str, SubmissionSource] = {}
    for root in _search_paths("submissions"):
        if root.is_dir():
            for folder in sorted(root.iterdir()):
                # The template is a starting point to copy, not an entry of the benchmark.
                if folder.name == "template" or not folder.is_dir():
                    continue
                if any((folder / f"{fw}.py").is_file() for fw in FRAMEWORKS):
                    found.setdefault(folder.name, SubmissionSource(folder.name, folder))
                elif (entry := algoperf_entry(folder)) is not None:
                    found.setdefault(folder.name, SubmissionSource(folder.name, folder, entry))
    return found


def find_submission(name_or_path: str) -> SubmissionSource:
    """A registered name (`adamw`), a path to a submission folder or file, or a path to an
    AlgoPerf submission (a folder with `submission.py`, or the submission's .py file)."""
    from algoperf.compat import algoperf_entry

    path = Path(name_or_path).expanduser()
    if path.exists():
        folder = (path if path.is_dir() else path.parent).resolve()
        native = path.is_dir() and any((folder / f"{fw}.py").is_file() for fw in FRAMEWORKS)
        entry = None if native else algoperf_entry(path.resolve())
        if entry is not None:
            # `submission.py` is named after its folder; another file after itself.
            name = folder.name if entry.name == "submission.py" else entry.stem
            return SubmissionSource(name, folder, entry)
        source = SubmissionSource(folder.name, folder)
        if not source.frameworks:
            raise AlgoperfError(
                f"{folder} is not a submission: it needs a torch.py and/or jax.py (copy "
                "submissions/template/ to start one: `algoperf new-submission NAME`), or, for a "
                "submission written for MLCommons AlgoPerf, a submission.py that imports "
                "algoperf (or algorithmic_efficiency) and defines update_params."
            )
        return source
    registry = list_submissions()
    if name_or_path in registry:
        return registry[name_or_path]
    raise AlgoperfError(
        f"unknown submission {name_or_path!r} (neither a registered name nor an existing path)."
        + did_you_mean(name_or_path, registry)
    )


def file_sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def import_submission_file(source: SubmissionSource, framework: str) -> ModuleType:
    path = source.file(framework)
    problem = framework_problem(source, framework)
    if problem:
        raise AlgoperfError(problem)
    try:
        if source.is_algoperf:
            return import_algoperf(source, framework)[0]
        return load_module(path, "submissions")
    except AlgoperfError:
        raise
    except SyntaxError as e:
        raise AlgoperfError(
            f"{e.filename or path} has a syntax error at line {e.lineno}: {e.msg}. Fix it and run "
            f"`algoperf check {source.folder}` again."
        ) from None
    except Exception as e:
        raise AlgoperfError(_import_failure(source, path, e)) from None


def framework_problem(source: SubmissionSource, framework: str) -> str | None:
    """Why `source` cannot run in `framework` (None when it can), with the fix."""
    if framework in source.frameworks and source.file(framework).is_file():
        return None
    if source.is_algoperf:
        return (
            f"{source.file(framework)} is an AlgoPerf submission written for "
            f"{', '.join(source.frameworks)} (from its imports); run it with "
            f"framework={source.frameworks[0]}."
        )
    return (
        f"submission {source.name!r} has no {framework} implementation "
        f"({source.file(framework)} is missing; it has: {', '.join(source.frameworks) or 'none'})."
        + (f" Use framework={source.frameworks[0]}." if source.frameworks else "")
    )


def _import_failure(source: SubmissionSource, path: Path, error: Exception) -> str:
    """Why importing a submission failed, with a fix that works as written."""
    tb = "".join(traceback.format_exception(type(error), error, error.__traceback__)[-3:])
    missing = getattr(error, "name", None) if isinstance(error, ModuleNotFoundError) else None
    from algoperf.compat.importer import MissingApiModule

    if isinstance(error, MissingApiModule):
        fix = "See the message above."
    elif missing:
        package = missing.split(".")[0]
        fix = (
            f"The package {package!r} is not installed in the harness's environment: install it "
            f"with `{Path(sys.executable).parent / 'pip'} install {package}` (the PyPI name may "
            "differ), or remove the import."
        )
    elif source.is_algoperf:
        fix = f"Fix the import and run `algoperf check {path}` again."
    else:
        # -P: the file's folder is not put on sys.path, so a file named torch.py or jax.py
        # does not shadow the package it is named after.
        fix = f"Fix the import so the file loads on its own (`{Path(sys.executable).name} -P {path}`)."
    return f"importing {path} failed with {type(error).__name__}: {error}. {fix}\n{tb}"


def import_algoperf(source: SubmissionSource, framework: str) -> tuple[ModuleType, Any, list[str]]:
    """An AlgoPerf submission's module, its description (in the framework given) and what the
    harness did to import it."""
    import dataclasses

    from algoperf.compat import describe, import_algoperf_module

    assert source.algoperf_entry is not None
    try:
        description = describe(source.algoperf_entry)
    except AlgoperfError:
        from algoperf.compat.detect import AlgoperfSource

        description = AlgoperfSource(source.algoperf_entry, framework, False, "algoperf")
    if description.framework != framework:
        description = dataclasses.replace(description, framework=framework)
    module, notices = import_algoperf_module(description, source.alias)
    return module, description, notices


def load_submission(source: SubmissionSource, framework: str) -> Submission:
    """Import a submission and return it in its full form (plugins and AlgoPerf submissions
    are adapted)."""
    module = import_submission_file(source, framework)
    path = source.file(framework)
    problems = api_problems(module, framework)
    if problems:
        raise AlgoperfError(f"{path} is not a valid submission:\n  - " + "\n  - ".join(problems))
    is_plugin = hasattr(module, "make_optimizer")
    compat = None
    if source.is_algoperf:
        from algoperf.compat.adapter import AlgoperfAdapter

        _, description, notices = import_algoperf(source, framework)  # the module is cached
        compat = AlgoperfAdapter(module, description, notices)
        functions = {name: getattr(compat, name) for name in FULL_API}
        functions["prepare_for_eval"] = (
            compat.prepare_for_eval if hasattr(module, "prepare_for_eval") else None
        )
    elif is_plugin:
        from algoperf.frameworks import load_backend

        functions = load_backend(framework).plugin_to_full(module)
    else:
        functions = {name: getattr(module, name) for name in FULL_API}
        functions["prepare_for_eval"] = getattr(module, "prepare_for_eval", None)
        functions["diagnostics"] = getattr(module, "diagnostics", None)
    return Submission(
        name=source.name,
        framework=framework,
        path=str(path),
        sha256=file_sha256(path),
        get_batch_size=functions.get("get_batch_size"),
        init_optimizer_state=functions["init_optimizer_state"],
        update_params=functions["update_params"],
        data_selection=functions["data_selection"],
        prepare_for_eval=functions.get("prepare_for_eval"),
        is_plugin=is_plugin,
        compat=compat,
        diagnostics=functions.get("diagnostics"),
    )


def api_problems(module: ModuleType, framework: str) -> list[str]:
    """What is missing or mis-shaped in a submission module (empty when it is valid)."""
    problems: list[str] = []
    if hasattr(module, "make_optimizer"):
        expected = PLUGIN_API[framework]
        if framework == "torch" and "model" in _parameter_names(module.make_optimizer):
            expected = [*expected, "model"]  # optional: the torch module, for optimizers that hook it
        problem = signature_problem(module.make_optimizer, expected)
        if problem:
            problems.append(f"make_optimizer {problem}")
        optional = {
            "get_batch_size": FULL_API["get_batch_size"],
            "diagnostics": DIAGNOSTICS_API[framework],
            **OPTIONAL_FULL_API,
        }
        kind = getattr(module, "step_kind", "gradient")
        if kind not in STEP_KINDS:
            problems.append(f"step_kind = {kind!r} is not one of {', '.join(map(repr, STEP_KINDS))}")
    else:
        missing = [name for name in FULL_API if not hasattr(module, name)]
        if len(missing) == len(FULL_API):
            return [
                "defines neither make_optimizer (optimizer plugin) nor the full API "
                f"({', '.join(FULL_API)}). Start from submissions/template/."
            ]
        for name in missing:
            problems.append(
                f"missing function {name}({', '.join(FULL_API[name])}) of the full submission API"
            )
        optional = {**OPTIONAL_FULL_API, "diagnostics": DIAGNOSTICS_API["full"]}
        for name, expected in FULL_API.items():
            if hasattr(module, name):
                problem = signature_problem(getattr(module, name), expected)
                if problem:
                    problems.append(f"{name} {problem}")
    for name, expected in optional.items():
        if hasattr(module, name):
            problem = signature_problem(getattr(module, name), expected)
            if problem:
                problems.append(f"{name} {problem}")
    return problems


def _parameter_names(fn: Any) -> list[str]:
    try:
        return list(inspect.signature(fn).parameters)
    except (TypeError, ValueError):
        return []
