"""TorchWorkload: the torch base of every torch workload — the array namespace, cross-entropy,
the gather of a batch from device tensors, the forward pass, and what owns each parameter.
Everything else a workload does is written once in `algoperf.workload.Workload`."""

from __future__ import annotations

import contextlib
from collections.abc import Mapping
from typing import Any

import numpy as np
import torch
from torch import nn

from algoperf.frameworks.torch.runtime import device
from algoperf.spec import Batch, ForwardPassMode
from algoperf.workload import ModuleKind, Workload, module_kind

# What kind of layer owns a parameter, for the typing rule in algoperf.workload.
MODULE_KINDS = (
    (nn.Embedding, ModuleKind.EMBEDDING),
    ((nn.LayerNorm, nn.GroupNorm, nn.BatchNorm1d, nn.BatchNorm2d, nn.RMSNorm), ModuleKind.NORM),
    ((nn.Conv1d, nn.Conv2d), ModuleKind.CONV),
)


def dropout(x: torch.Tensor, rate: float, training: bool) -> torch.Tensor:
    """Inverted dropout at a call-time `rate`; the input itself (no random draw) when the rate
    is 0 or the model is not training."""
    if rate == 0 or not training:
        return x
    return nn.functional.dropout(x, rate, training=True)


class TorchWorkload(Workload):
    """A workload's torch side: subclasses provide `build_model()` (an nn.Module called with
    `model_inputs(batch)`)."""

    framework = "torch"
    xp = torch

    # ---- data -----------------------------------------------------------------------------
    def to_device(self, arrays: dict[str, np.ndarray]) -> dict[str, torch.Tensor]:
        dev = device()
        return {k: torch.from_numpy(np.ascontiguousarray(v)).to(dev) for k, v in arrays.items()}

    def gather_train_batch(self, source: dict[str, Any], indices: np.ndarray) -> Batch:
        index = torch.from_numpy(np.asarray(indices, dtype=np.int64))
        rows = {}
        for key, value in source.items():
            flat = index.to(value.device).reshape(-1)
            rows[key] = value.index_select(0, flat).reshape(*index.shape, *value.shape[1:])
        return self.batch_from_rows(rows)

    def eval_batch(self, split: Mapping[str, Any], start: int) -> Batch:
        batch = {k: v[start : start + self.eval_batch_size] for k, v in split.items()}
        if "weights" not in batch:
            first = next(iter(batch.values()))
            batch["weights"] = torch.ones(first.shape[0], device=first.device)
        return batch

    # ---- model ----------------------------------------------------------------------------
    def build_model(self) -> nn.Module:
        raise NotImplementedError

    def init_model_fn(self, rng: int) -> tuple[nn.Module, None]:
        torch.manual_seed(rng)
        model = self.build_model().to(device())
        modules = dict(model.named_modules())
        types = {}
        for name, _ in model.named_parameters():
            owner = modules[name.rsplit(".", 1)[0]] if "." in name else model
            types[name] = self.param_type_of(name, module_kind(type(owner), MODULE_KINDS))
        self._set_params(types, {name: tuple(p.shape) for name, p in model.named_parameters()})
        return model, None

    def model_fn(
        self,
        params: nn.Module,
        batch: Batch,
        model_state: Any,
        mode: ForwardPassMode,
        rng: Any,
        update_batch_norm: bool,
        dropout_rate: float | None = None,
    ) -> tuple[torch.Tensor, Any]:
        train = mode is ForwardPassMode.TRAIN
        rate = self.resolve_dropout_rate(dropout_rate)
        # Models with dropout take the rate as a call argument (0 in eval: nothing is dropped).
        kwargs = {"dropout_rate": rate if train else 0.0} if self.supports_dropout else {}
        params.train(train)
        with self.autocast():
            if mode is ForwardPassMode.EVAL:
                with torch.inference_mode():
                    return params(self.model_inputs(batch), **kwargs).float(), model_state
            return params(self.model_inputs(batch), **kwargs).float(), model_state

    def autocast(self) -> contextlib.AbstractContextManager:
        """Mixed precision for sizes that declare `precision: bfloat16`: autocast runs matmuls
        and convolutions in bf16 and keeps parameters, norms, softmax and the loss in float32
        (outputs are cast back to float32 by model_fn)."""
        if self.precision == "bfloat16":
            return torch.autocast(device().type, dtype=torch.bfloat16)
        return contextlib.nullcontext()

    def per_example_cross_entropy(self, logits: Any, labels: Any, label_smoothing: float) -> torch.Tensor:
        flat = logits.reshape(-1, logits.shape[-1])
        losses = nn.functional.cross_entropy(
            flat, labels.reshape(-1).long(), reduction="none", label_smoothing=label_smoothing
        )
        return losses.reshape(labels.shape)

    def eval_batch_sums(self, params: nn.Module, model_state: Any, batch: Batch) -> dict[str, Any]:
        with torch.inference_mode():
            outputs, _ = self.model_fn(params, batch, model_state, ForwardPassMode.EVAL, None, False)
            return self.batch_sums(outputs, batch)
