"""Imports for an AlgoPerf submission, scoped to its own modules.

A submission's `import algoperf.spec` or `from algorithmic_efficiency import spec` must reach
AlgoPerf's API (algoperf.compat.api), while the harness itself, named `algoperf` too, keeps its
own modules. So the submission's modules are executed with a `__builtins__` whose `__import__`
redirects those names; every other import goes to Python's own machinery. Helper modules next
to the submission load the same way, under a unique package name (never via sys.path, so a
helper named like a package cannot shadow it), whether imported as siblings (`import helper`)
or by AlgoPerf's repository path (`from submissions.x.my_submission.helper import ...`: the
part of the path after the submission's folder name is looked up in the folder).
"""

from __future__ import annotations

import builtins
import hashlib
import importlib
import importlib.abc
import importlib.machinery
import importlib.util
import sys
from pathlib import Path
from types import ModuleType
from typing import Any

from algoperf.compat.api import MODULES
from algoperf.compat.detect import ALGOPERF_PACKAGES

API_PACKAGE = "algoperf.compat.api"
NAMESPACE = "algoperf_plugins"


class MissingApiModule(ModuleNotFoundError):
    """An AlgoPerf module the compatibility layer does not provide (e.g. a workload's code)."""


def _api_module(name: str) -> ModuleType:
    """`algoperf.X` / `algorithmic_efficiency.X` as this harness provides it."""
    head, _, rest = name.partition(".")
    if not rest:
        return importlib.import_module(API_PACKAGE)
    first = rest.split(".")[0]
    if first not in MODULES or "." in rest:
        raise MissingApiModule(
            f"No module named {name!r}: the harness offers AlgoPerf's submission API "
            f"({', '.join(f'{head}.{m}' for m in MODULES)}), not AlgoPerf's {rest!r} "
            "(workload code, data pipelines and the runner are the harness's own). Remove that "
            "import, or take what you need from the workload object the harness passes in.",
            name=name,
        )
    return importlib.import_module(f"{API_PACKAGE}.{first}")


class _Chain(ModuleType):
    """A placeholder for the leading parts of a dotted name (`submissions.external_tuning`),
    so `import a.b.helper` followed by `a.b.helper.f()` finds the helper."""


class SubmissionImporter:
    """Loads one AlgoPerf submission folder's modules with redirected imports."""

    def __init__(self, folder: Path, folder_name: str | None = None):
        self.folder = folder.resolve()
        # The folder's name in AlgoPerf's repository path (a trial imports a snapshot of it
        # that lives under another name).
        self.folder_name = folder_name or self.folder.name
        digest = hashlib.sha1(str(self.folder).encode()).hexdigest()[:10]
        self.package = f"{NAMESPACE}.algoperf_{digest}"
        self.builtins = dict(vars(builtins))
        self.builtins["__import__"] = self._import
        self._installed_cache: dict[str, bool] = {}
        # name -> our module name or None: an import inside a function runs at every call
        # (maybe every training step), so each name is looked up on disk once.
        self._local_names: dict[str, str | None] = {}
        self._install_package()

    # ---- the submission folder as a package ---------------------------------------------------
    def _install_package(self) -> None:
        if NAMESPACE not in sys.modules:
            root = ModuleType(NAMESPACE)
            root.__path__ = []
            sys.modules[NAMESPACE] = root
        if self.package not in sys.modules:
            package = ModuleType(self.package)
            package.__path__ = [str(self.folder)]
            package.__file__ = str(self.folder / "__init__.py")
            sys.modules[self.package] = package
        if not any(isinstance(f, _Finder) and f.importer is self for f in sys.meta_path):
            sys.meta_path.insert(0, _Finder(self))

    def load(self, path: Path) -> ModuleType:
        """Import one file of the folder (the submission itself) as `<package>.<stem>`."""
        relative = path.resolve().relative_to(self.folder).with_suffix("")
        return importlib.import_module(".".join([self.package, *relative.parts]))

    # ---- the redirection ----------------------------------------------------------------------
    def _import(self, name, globals=None, locals=None, fromlist=(), level=0):  # noqa: A002
        if level == 0:
            head = name.split(".")[0]
            if head in ALGOPERF_PACKAGES:
                return self._resolved(name, _api_module(name), fromlist)
            if name not in self._local_names:
                self._local_names[name] = self._local_name(name)
            local = self._local_names[name]
            if local is not None:
                return self._resolved(name, importlib.import_module(local), fromlist)
        return builtins.__import__(name, globals, locals, fromlist, level)

    def _local_name(self, name: str) -> str | None:
        """Our package's module name for `name` when it names a file of the submission folder:
        by AlgoPerf's repository path (`a.b.<folder>.helper`), or as a sibling (`helper`) when
        no installed package has that name (a helper never shadows a real package)."""
        parts = name.split(".")
        if self.folder_name in parts:
            cut = len(parts) - 1 - parts[::-1].index(self.folder_name)
            rest = parts[cut + 1 :]
            base = self.folder.joinpath(*rest)
            if not rest or base.with_suffix(".py").is_file() or base.is_dir():
                return ".".join([self.package, *rest])
        base = self.folder.joinpath(*parts)
        if (base.with_suffix(".py").is_file() or (base / "__init__.py").is_file()) and not self._installed(
            parts[0]
        ):
            return ".".join([self.package, *parts])
        return None

    def _installed(self, top: str) -> bool:
        if top not in self._installed_cache:
            self._installed_cache[top] = top in sys.modules or importlib.util.find_spec(top) is not None
        return self._installed_cache[top]

    def _resolved(self, name: str, module: ModuleType, fromlist) -> ModuleType:
        """What `__import__` returns: the module itself for `from name import ...`; for a plain
        `import a.b.c`, the top package `a` with `b.c` reachable as attributes."""
        if fromlist:
            if hasattr(module, "__path__"):
                for item in fromlist:
                    if item != "*" and not hasattr(module, item):
                        try:
                            importlib.import_module(f"{module.__name__}.{item}")
                        except ModuleNotFoundError as e:
                            if e.name != f"{module.__name__}.{item}":
                                raise
            return module
        parts = name.split(".")
        if len(parts) == 1:
            return module
        top = _Chain(parts[0])
        node = top
        for part in parts[1:-1]:
            child = _Chain(part)
            setattr(node, part, child)
            node = child
        setattr(node, parts[-1], module)
        return top


class _Finder(importlib.abc.MetaPathFinder):
    """Finds the submission package's modules and gives each the redirecting builtins."""

    def __init__(self, importer: SubmissionImporter):
        self.importer = importer

    def find_spec(self, fullname, path=None, target=None):
        if not fullname.startswith(self.importer.package + "."):
            return None
        spec = importlib.machinery.PathFinder.find_spec(fullname, path)
        if spec is None or not isinstance(spec.loader, importlib.machinery.SourceFileLoader):
            return spec
        spec.loader = _Loader(spec.loader, self.importer.builtins)
        return spec


class _Loader(importlib.abc.Loader):
    def __init__(self, inner: importlib.machinery.SourceFileLoader, redirected: dict[str, Any]):
        self.inner, self.redirected = inner, redirected

    def create_module(self, spec):
        return None

    def exec_module(self, module: ModuleType) -> None:
        module.__builtins__ = self.redirected  # exec keeps a __builtins__ that is already there
        code = self.inner.get_code(module.__name__)
        exec(code, module.__dict__)  # noqa: S102 (a module's own code, as SourceFileLoader does)


# ---- names removed from current JAX that AlgoPerf-era code still calls ---------------------------
LEGACY_JAX = {
    "tree_map": "tree.map",
    "tree_leaves": "tree.leaves",
    "tree_flatten": "tree.flatten",
    "tree_unflatten": "tree.unflatten",
    "tree_structure": "tree.structure",
    "tree_transpose": "tree.transpose",
    "tree_reduce": "tree.reduce",
}


_RESTORED: list[str] = []


def restore_legacy_jax() -> list[str]:
    """Put back `jax.tree_map` and its siblings (removed in JAX 0.6) as the `jax.tree` functions
    they were aliases of. Returns the names restored in this process (none on a JAX that
    still has them)."""
    import jax

    for old, new in LEGACY_JAX.items():
        try:
            getattr(jax, old)
        except AttributeError:
            target = jax
            for part in new.split("."):
                target = getattr(target, part)
            setattr(jax, old, target)
            _RESTORED.append(f"jax.{old}")
    return list(_RESTORED)
