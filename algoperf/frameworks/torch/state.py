"""The torch model's state between the worker and the supervisor (algoperf.ipc): CPU tensors
live in the shared block itself, so handing them over costs nothing."""

from __future__ import annotations

from typing import Any

import numpy as np
import torch
from torch import nn

from algoperf.rules import check_param_shapes


def _model_state(model: nn.Module) -> dict[str, torch.Tensor]:
    """Parameters and buffers by name (tied tensors once, under their first name)."""
    state, seen = {}, set()
    for name, tensor in model.state_dict(keep_vars=True).items():
        if id(tensor) not in seen:
            seen.add(id(tensor))
            state[name] = tensor
    return state


def state_layout(model: nn.Module, model_state: Any) -> list[tuple[str, str, tuple[int, ...], int]]:
    return [
        (name, str(t.dtype), tuple(t.shape), t.numel() * t.element_size())
        for name, t in _model_state(model).items()
    ]


def state_views(block: Any, layout: list) -> dict[str, torch.Tensor]:
    views = {}
    for spec in layout:
        dtype = getattr(torch, spec.dtype.removeprefix("torch."))
        count = int(np.prod(spec.shape, dtype=np.int64))
        views[spec.name] = (
            torch.frombuffer(block.map, dtype=dtype, count=count, offset=spec.offset).view(spec.shape)
            if count
            else torch.empty(spec.shape, dtype=dtype)
        )
    return views


def bind_state(model: nn.Module, model_state: Any, views: dict[str, torch.Tensor]) -> None:
    """Move the model's CPU tensors into the shared block, so handing them over costs nothing
    while the optimizer updates them in place."""
    with torch.no_grad():
        for name, tensor in _model_state(model).items():
            view = views[name]
            if tensor.device.type != "cpu" or view.shape != tensor.shape or view.dtype != tensor.dtype:
                continue
            view.copy_(tensor)
            tensor.data = view


def export_state(model: nn.Module, model_state: Any, views: dict[str, torch.Tensor]) -> None:
    """Copies only tensors a submission moved out of the block, or that live on a GPU."""
    state = _model_state(model)
    check_param_shapes(
        {k: tuple(v.shape) for k, v in views.items()}, {k: tuple(v.shape) for k, v in state.items()}
    )
    with torch.no_grad():
        for name, tensor in state.items():
            view = views[name]
            if tensor.data_ptr() != view.data_ptr():
                view.copy_(tensor.detach().to(view.dtype))


def import_state(model: nn.Module, model_state: Any, views: dict[str, torch.Tensor]) -> tuple[nn.Module, Any]:
    with torch.no_grad():
        for name, tensor in _model_state(model).items():
            tensor.copy_(views[name])
    return model, model_state
