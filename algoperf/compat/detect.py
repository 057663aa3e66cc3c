"""Recognise a submission written for MLCommons AlgoPerf, and read what it needs from its
source (framework, pmap or jit style) without importing it."""

from __future__ import annotations

import ast
from dataclasses import dataclass
from pathlib import Path

from algoperf.errors import AlgoperfError

ALGOPERF_PACKAGES = ("algoperf", "algorithmic_efficiency")
ENTRY_NAME = "submission.py"
TORCH_ROOTS = {"torch", "torchvision", "schedulefree", "pytorch_optimizer"}
JAX_ROOTS = {"jax", "jaxlib", "flax", "optax", "chex", "jraph"}


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


def _imports(tree: ast.AST) -> set[str]:
    """Top-level package names the module imports (absolute imports only)."""
    roots: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            roots.update(alias.name.split(".")[0] for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            roots.add(node.module.split(".")[0])
    return roots


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
    for node in ast.walk(tree):
        names = []
        if isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            names = [node.module] + (
                [f"{node.module}.{alias.name}" for alias in node.names] if node.module == "algoperf" else []
            )
        for name in names:
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


def _uses_pmap(tree: ast.AST) -> bool:
    for node in ast.walk(tree):
        if isinstance(node, ast.Attribute) and node.attr == "pmap":
            return True
        if isinstance(node, ast.Name) and node.id == "pmap":
            return True
    return False


def _pmap_axis_name(trees: list[ast.AST]) -> str | None:
    """The string `axis_name=` of the first pmap call (or functools.partial(jax.pmap, ...))."""
    for tree in trees:
        for node in ast.walk(tree):
            if not isinstance(node, ast.Call):
                continue
            mentions_pmap = any(
                (isinstance(n, ast.Attribute) and n.attr == "pmap")
                or (isinstance(n, ast.Name) and n.id == "pmap")
                for n in [node.func, *node.args]
            )
            if mentions_pmap:
                for keyword in node.keywords:
                    if keyword.arg == "axis_name" and isinstance(keyword.value, ast.Constant):
                        return str(keyword.value.value)
    return None


def describe(entry: Path) -> AlgoperfSource:
    """Framework and style of an AlgoPerf submission, from its source and its helper modules'."""
    tree = _parse(entry)
    if tree is None:
        raise AlgoperfError(f"{entry} cannot be parsed; run `python -m py_compile {entry}` to see why.")
    roots = _imports(tree)
    helpers = [p for p in entry.parent.rglob("*.py") if p != entry]
    helper_trees = [t for t in (_parse(p) for p in helpers[:200]) if t is not None]
    all_roots = roots.union(*(_imports(t) for t in helper_trees)) if helper_trees else roots
    torch_like, jax_like = bool(all_roots & TORCH_ROOTS), bool(all_roots & JAX_ROOTS)
    # The entry file decides when the helpers mix frameworks.
    if (roots & TORCH_ROOTS) and not (roots & JAX_ROOTS):
        framework = "torch"
    elif (roots & JAX_ROOTS) and not (roots & TORCH_ROOTS):
        framework = "jax"
    elif torch_like != jax_like:
        framework = "torch" if torch_like else "jax"
    else:
        raise AlgoperfError(
            f"{entry}: cannot tell whether this AlgoPerf submission is for PyTorch or JAX from its "
            "imports (it imports both or neither); give framework=torch or framework=jax."
        )
    pmap = framework == "jax" and (_uses_pmap(tree) or any(_uses_pmap(t) for t in helper_trees))
    package = "algoperf" if "algoperf" in roots else "algorithmic_efficiency"
    axis_name = (_pmap_axis_name([tree, *helper_trees]) if pmap else None) or "batch"
    return AlgoperfSource(entry, framework, pmap, package, pmap_axis_name=axis_name)
