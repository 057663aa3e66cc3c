"""The JAX model's state between the worker and the supervisor (algoperf.ipc): JAX arrays live
in the runtime's own buffers, so the worker copies them into the shared block at each eval."""

from __future__ import annotations

from typing import Any

import jax
import numpy as np

from algoperf.frameworks.jax.runtime import device
from algoperf.rules import check_param_shapes


def _state_leaves(params: Any, model_state: Any) -> tuple[list[tuple[str, Any]], Any]:
    leaves, treedef = jax.tree_util.tree_flatten_with_path({"params": params, "model_state": model_state})
    return [(jax.tree_util.keystr(path), leaf) for path, leaf in leaves], treedef


def state_layout(params: Any, model_state: Any) -> list[tuple[str, str, tuple[int, ...], int]]:
    leaves, _ = _state_leaves(params, model_state)
    return [(name, np.dtype(leaf.dtype).name, tuple(leaf.shape), int(leaf.nbytes)) for name, leaf in leaves]


def state_views(block: Any, layout: list) -> dict[str, np.ndarray]:
    return block.numpy_views(layout)


def bind_state(params: Any, model_state: Any, views: dict[str, np.ndarray]) -> None:
    """Nothing to bind: JAX arrays cannot live in a foreign buffer; export copies."""


def export_state(params: Any, model_state: Any, views: dict[str, np.ndarray]) -> None:
    """Device -> shared host buffers, one copy."""
    leaves, _ = _state_leaves(params, model_state)
    check_param_shapes(
        {k: tuple(v.shape) for k, v in views.items()}, {k: tuple(leaf.shape) for k, leaf in leaves}
    )
    for name, leaf in leaves:
        views[name][...] = np.asarray(leaf)


def import_state(params: Any, model_state: Any, views: dict[str, np.ndarray]) -> tuple[Any, Any]:
    """A device copy of the worker's state, shaped like the supervisor's own model."""
    leaves, treedef = _state_leaves(params, model_state)
    arrays = [jax.device_put(np.array(views[name]), device()) for name, _ in leaves]
    restored = jax.tree_util.tree_unflatten(treedef, arrays)
    return restored["params"], restored["model_state"]
