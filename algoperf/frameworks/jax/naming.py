"""Flax parameter paths as the torch model's dotted names, so the two frameworks' parameters
line up by name (and `param_types` keys are the same in both)."""

from __future__ import annotations

from typing import Any

import jax

# Flax leaf names that torch calls `weight` (nn.Dense/Conv kernel, norm scale, nn.Embed table).
TORCH_LEAF_NAMES = {"kernel": "weight", "scale": "weight", "embedding": "weight"}


def _path_keys(path: tuple[Any, ...]) -> tuple[str, ...]:
    return tuple(str(getattr(k, "key", getattr(k, "name", getattr(k, "idx", k)))) for k in path)


def raw_paths(params: Any) -> list[tuple[tuple[str, ...], Any]]:
    """(flax path, leaf) pairs in jax's tree order."""
    return [(_path_keys(path), leaf) for path, leaf in jax.tree_util.tree_flatten_with_path(params)[0]]


def flatten_key(path: tuple[str, ...]) -> str:
    """A flax param path as its torch-style dotted name: ("head", "kernel") -> "head.weight"."""
    return ".".join([*path[:-1], TORCH_LEAF_NAMES.get(path[-1], path[-1])])


def flatten_params(params: Any) -> dict[str, Any]:
    """Flax params -> {torch-style dotted name: leaf}, in jax's tree order.

    The model's own parameter order (torch's `named_parameters()` order) is that of the
    workload's `param_types`.
    """
    flat: dict[str, Any] = {}
    for path, leaf in raw_paths(params):
        name = flatten_key(path)
        if name in flat:
            raise ValueError(f"two flax parameters map to the torch-style name {name!r}")
        flat[name] = leaf
    return flat


def unflatten_params(flat: dict[str, Any], like: Any) -> Any:
    """The inverse of `flatten_params`: a pytree shaped like `like` with the values of `flat`.

    E.g. `unflatten_params(workload.param_types, params)` labels params for optax masks.
    """
    names = iter([flatten_key(path) for path, _ in raw_paths(like)])
    return jax.tree.map(lambda _: flat[next(names)], like)


def param_shapes(params: Any) -> dict[str, tuple[int, ...]]:
    return {name: tuple(leaf.shape) for name, leaf in flatten_params(params).items()}


def label_params(workload: Any, label_of: Any) -> Any:
    """A function params -> a tree of labels, `label_of(info)` per parameter (info: the
    workload's ParamInfo), for optax.partition / optax.masked. E.g. Muon for hidden matrices,
    AdamW for the rest:

        labels = label_params(workload, lambda info: "muon" if info.is_matrix
                              and info.role is ParamRole.HIDDEN else "adamw")
        optax.partition({"muon": ..., "adamw": ...}, labels)
    """
    info = workload.param_info
    return lambda params: unflatten_params({name: label_of(i) for name, i in info.items()}, params)
