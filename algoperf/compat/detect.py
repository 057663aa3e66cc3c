"""Recognise a submission written for MLCommons AlgoPerf, and read what it needs from its
source (framework, pmap or jit style) without importing it."""

from __future__ import annotations

import ast
from dataclasses import dataclass
from pathlib import Path

from algoperf.errors import AlgoperfError

ALGOPERF_PACKAGES = ("algoperf", "algorithmic_efficiency")
ENTRY_NAME = "submission.py"
# What an import says about the framework: the frameworks themselves first; libraries of one
# framework (optax, say, whose schedules PyTorch submissions borrow too) only when those are silent.
FRAMEWORK_ROOTS = {"torch": {"torch"}, "jax": {"jax", "flax"}}
LIBRARY_ROOTS = {
    "torch": {"torchvision", "schedulefree", "pytorch_optimizer"},
    "jax": {"jaxlib", "optax", "chex", "jraph"},
}


@dataclass(frozen=True)
class AlgoperfSource:
    """An AlgoPerf submission file, and what its source says about it."""

    entry: Path  # submission.py (or the file named by path)
    framework: str  # "torch" | "jax"
    pmap: bool  # written for pmap (replicated parameters, a leading device axis on batches)
    package: str  # "algoperf" (v0.6) or "algorithmic_efficiency" (before v0.6)
    pmap_axis_name: str = "batch"  # the axis_name its pmap uses (AlgoPerf's convention: 'batch')

    @property
    def api(self) -> str:
        era = "v0.6" if self.package == "algoperf" else "v0.5"
        style = "pmap" if self.pmap else ("jit" if self.framework == "jax" else "eager")
        return f"AlgoPerf {era} API ({self.package}), {self.framework}, {style} style"


def _imported_modules(tree: ast.AST) -> set[str]:
    """Dotted names of the modules an absolute import reaches: `import a.b` -> a.b,
    `from a.b import c` -> a.b and (c may be a module) a.b.c."""
    names: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            names.add(node.module)
            names.update(f"{node.module}.{alias.name}" for alias in node.names)
    return names


def _imports(tree: ast.AST) -> set[str]:
    """Top-level package names the module imports."""
    return {name.split(".")[0] for name in _imported_modules(tree)}


def _parse(path: Path) -> ast.AST | None:
    try:
        return ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
    except (SyntaxError, UnicodeDecodeError, OSError):
        return None  # importing it reports the error properly


def _harness_modules(tree: ast.AST) -> set[str]:
    """`algoperf.X` modules imported that are this harness's own and not AlgoPerf's (e.g.
    algoperf.frameworks): only a submission written for this harness imports them."""
    from algoperf.compat.api import MODULES

    harness = Path(__file__).resolve().parent.parent
    found = set()
    for name in _imported_modules(tree):
        parts = name.split(".")
        if parts[0] != "algoperf" or len(parts) == 1 or parts[1] in MODULES:
            continue
        if (harness / f"{parts[1]}.py").is_file() or (harness / parts[1]).is_dir():
            found.add(name)
    return found


def is_algoperf_file(path: Path) -> bool:
    """A file that imports AlgoPerf's package (and nothing of this harness's own) and defines
    `update_params`. The harness's own submission files, torch.py and jax.py, never are."""
    if path.name in ("torch.py", "jax.py") or path.suffix != ".py" or not path.is_file():
        return False
    tree = _parse(path)
    if tree is None:
        return False
    defines = {n.name for n in getattr(tree, "body", []) if isinstance(n, ast.FunctionDef)}
    return (
        "update_params" in defines
        and bool(_imports(tree) & set(ALGOPERF_PACKAGES))
        and not _harness_modules(tree)
    )


def algoperf_entry(path: Path) -> Path | None:
    """The AlgoPerf submission file a path names: the file itself, or `submission.py` in the
    folder. None when the path is not an AlgoPerf submission."""
    if path.is_file():
        return path if is_algoperf_file(path) else None
    entry = path / ENTRY_NAME
    return entry if is_algoperf_file(entry) else None


def _pmap_axis_name(trees: list[ast.AST]) -> str | None:
    """None for code that never mentions pmap; else the string `axis_name=` of its first pmap
    call (or functools.partial(jax.pmap, ...)) that gives one, or AlgoPerf's "batch"."""

    def is_pmap(node: ast.AST) -> bool:
        return (isinstance(node, ast.Attribute) and node.attr == "pmap") or (
            isinstance(node, ast.Name) and node.id == "pmap"
        )

    nodes = [node for tree in trees for node in ast.walk(tree)]
    if not any(is_pmap(node) for node in nodes):
        return None
    for node in nodes:
        if isinstance(node, ast.Call) and any(is_pmap(n) for n in [node.func, *node.args]):
            for keyword in node.keywords:
                if keyword.arg == "axis_name" and isinstance(keyword.value, ast.Constant):
                    return str(keyword.value.value)
    return "batch"


def describe(entry: Path) -> AlgoperfSource:
    """Framework and style of an AlgoPerf submission, from its source and its helper modules'."""
    tree = _parse(entry)
    if tree is None:
        raise AlgoperfError(f"{entry} cannot be parsed; run `python -m py_compile {entry}` to see why.")
    roots = _imports(tree)
    helpers = [p for p in entry.parent.rglob("*.py") if p != entry]
    helper_trees = [t for t in (_parse(p) for p in helpers[:200]) if t is not None]
    all_roots = roots.union(*(_imports(t) for t in helper_trees))
    # The entry file decides before its helpers, the frameworks before their libraries.
    for kinds in (FRAMEWORK_ROOTS, LIBRARY_ROOTS):
        found = [{fw for fw, names in kinds.items() if names & imported} for imported in (roots, all_roots)]
        decided = next((f for f in found if len(f) == 1), None)
        if decided:
            framework = decided.pop()
            break
    else:
        raise AlgoperfError(
            f"{entry}: cannot tell whether this AlgoPerf submission is for PyTorch or JAX from its "
            "imports (it imports both or neither); give framework=torch or framework=jax."
        )
    axis_name = _pmap_axis_name([tree, *helper_trees]) if framework == "jax" else None
    package = "algoperf" if "algoperf" in roots else "algorithmic_efficiency"
    return AlgoperfSource(
        entry, framework, axis_name is not None, package, pmap_axis_name=axis_name or "batch"
    )
