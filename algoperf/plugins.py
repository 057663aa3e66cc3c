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
    FULL_API,
    OPTIONAL_FULL_API,
    PLUGIN_API,
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
    name: str
    folder: Path

    def file(self, framework: str) -> Path:
        return self.folder / f"{framework}.py"

    @property
    def search_space_path(self) -> Path:
        return self.folder / "search_space.yaml"

    @property
    def frameworks(self) -> list[str]:
        return [fw for fw in FRAMEWORKS if self.file(fw).is_file()]


def list_submissions() -> dict[str, SubmissionSource]:
    found: dict[str, SubmissionSource] = {}
    for root in _search_paths("submissions"):
        if root.is_dir():
            for folder in sorted(root.iterdir()):
                # The template is a starting point to copy, not an entry of the benchmark.
                if folder.name == "template":
                    continue
                if folder.is_dir() and any((folder / f"{fw}.py").is_file() for fw in FRAMEWORKS):
                    found.setdefault(folder.name, SubmissionSource(folder.name, folder))
    return found


def find_submission(name_or_path: str) -> SubmissionSource:
    """A registered name (`adamw`) or a path to a submission folder or file."""
    path = Path(name_or_path).expanduser()
    if path.exists():
        folder = path if path.is_dir() else path.parent
        source = SubmissionSource(folder.resolve().name, folder.resolve())
        if not source.frameworks:
            raise AlgoperfError(
                f"{folder} is not a submission: it needs a torch.py and/or jax.py "
                "(copy submissions/template/ to start one: `algoperf new-submission NAME`)."
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
    if not path.is_file():
        raise AlgoperfError(
            f"submission {source.name!r} has no {framework} implementation ({path} is missing; "
            f"it has: {', '.join(source.frameworks)}). Use framework={source.frameworks[0]}."
        )
    try:
        return load_module(path, "submissions")
    except SyntaxError as e:
        raise AlgoperfError(
            f"{path} has a syntax error at line {e.lineno}: {e.msg}. Fix it and run "
            f"`algoperf check {source.folder}` again."
        ) from None
    except Exception as e:
        tb = "".join(traceback.format_exception(type(e), e, e.__traceback__)[-3:])
        raise AlgoperfError(
            f"importing {path} failed with {type(e).__name__}: {e}. Fix the import so the file "
            f"loads on its own (`python {path}`).\n{tb}"
        ) from None


def load_submission(source: SubmissionSource, framework: str) -> Submission:
    """Import a submission and return it in its full form (plugins are adapted)."""
    module = import_submission_file(source, framework)
    path = source.file(framework)
    problems = api_problems(module, framework)
    if problems:
        raise AlgoperfError(f"{path} is not a valid submission:\n  - " + "\n  - ".join(problems))
    is_plugin = hasattr(module, "make_optimizer")
    if is_plugin:
        from algoperf.frameworks import load_backend

        functions = load_backend(framework).plugin_to_full(module)
    else:
        functions = {name: getattr(module, name) for name in FULL_API}
        functions["prepare_for_eval"] = getattr(module, "prepare_for_eval", None)
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
    )


def api_problems(module: ModuleType, framework: str) -> list[str]:
    """What is missing or mis-shaped in a submission module (empty when it is valid)."""
    problems: list[str] = []
    if hasattr(module, "make_optimizer"):
        expected = PLUGIN_API[framework]
        problem = signature_problem(module.make_optimizer, expected)
        if problem:
            problems.append(f"make_optimizer {problem}")
        optional = {"get_batch_size": FULL_API["get_batch_size"], **OPTIONAL_FULL_API}
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
        optional = OPTIONAL_FULL_API
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
