"""PyTorch side of the harness: the TorchWorkload base, device handling, and the plugin adapter.

Only this file (and workloads/submissions written for torch) imports torch.
"""

from __future__ import annotations

import contextlib
import os
import sys
from collections.abc import Iterator
from typing import Any

import numpy as np
import torch
from torch import nn

from algoperf.spec import (
    Batch,
    ForwardPassMode,
    LossType,
    ParamType,
    Workload,
    hparam,
    next_batch,
)

FRAMEWORK = "torch"


def device() -> torch.device:
    return torch.device("cuda" if torch.cuda.is_available() else "cpu")


def set_threads(num_threads: int) -> None:
    """Give this process its share of the cores (oversubscription costs ~37x on 2 cores)."""
    torch.set_num_threads(num_threads)
    try:
        torch.set_num_interop_threads(max(1, num_threads))
    except RuntimeError:  # only settable before the first parallel op; harmless if too late
        pass


def seed_everything(seed: int) -> None:
    torch.manual_seed(seed)
    np.random.seed(seed % (2**32))


def sync(*_: Any) -> None:
    """Wait for queued device work before the clock is read (CPU ops are already synchronous)."""
    if torch.cuda.is_available():
        torch.cuda.synchronize()


def step_rng(seed: int, step: int) -> int:
    """The per-call rng handed to a submission: an int seed (torch code seeds its own generators)."""
    return (seed * 1_000_003 + step + 1) & 0x7FFFFFFF


def is_finite(value: Any) -> bool:
    return bool(torch.isfinite(torch.as_tensor(value)).all())


def to_float(value: Any) -> float:
    return float(value.detach().item()) if torch.is_tensor(value) else float(value)


def param_shapes(model: nn.Module) -> dict[str, tuple[int, ...]]:
    return {name: tuple(p.shape) for name, p in model.named_parameters()}


def compile_time_s() -> float:
    """Seconds torch.compile has spent so far in this process (0 when compile is off)."""
    if "torch._dynamo" not in sys.modules:  # never imported: nothing compiled (importing costs ~2 s)
        return 0.0
    try:
        from torch._dynamo.utils import compile_times

        table = compile_times(repr="csv", aggregate=True)
        return float(sum(float(v) for v in table[1])) if table and len(table) > 1 else 0.0
    except Exception:  # private API: absent or changed means no compile accounting
        return 0.0


class TorchWorkload(Workload):
    """Torch implementation helpers shared by every torch workload."""

    framework = FRAMEWORK

    def to_device(self, arrays: dict[str, np.ndarray]) -> dict[str, torch.Tensor]:
        dev = device()
        return {k: torch.from_numpy(np.ascontiguousarray(v)).to(dev) for k, v in arrays.items()}

    @staticmethod
    def random_batches(train: dict[str, torch.Tensor], batch_size: int, seed: int) -> Iterator[Batch]:
        """Epochs of a seeded permutation, sliced on the device (drop the ragged last batch)."""
        n = len(next(iter(train.values())))
        dev = next(iter(train.values())).device
        generator = torch.Generator(device="cpu").manual_seed(seed)
        while True:
            order = torch.randperm(n, generator=generator).to(dev)
            for start in range(0, n - batch_size + 1, batch_size):
                idx = order[start : start + batch_size]
                yield {k: v.index_select(0, idx) for k, v in train.items()}

    # Subclasses build the nn.Module here.
    def build_model(self) -> nn.Module:
        raise NotImplementedError

    def param_type_of(self, name: str, param: nn.Parameter, module: nn.Module) -> ParamType:
        """Default parameter typing from the owning module; workloads override for attention."""
        if isinstance(module, nn.Embedding):
            return ParamType.EMBEDDING
        if isinstance(module, (nn.LayerNorm, nn.GroupNorm, nn.BatchNorm1d, nn.BatchNorm2d, nn.RMSNorm)):
            return ParamType.NORM_SCALE if name.endswith("weight") else ParamType.NORM_BIAS
        if name.endswith("bias"):
            return ParamType.BIAS
        if isinstance(module, (nn.Conv1d, nn.Conv2d)):
            return ParamType.CONV_WEIGHT
        return ParamType.WEIGHT

    def init_model_fn(self, rng: int) -> tuple[nn.Module, None]:
        torch.manual_seed(rng)
        model = self.build_model().to(device())
        modules = dict(model.named_modules())
        types: dict[str, ParamType] = {}
        for name, param in model.named_parameters():
            owner = modules[name.rsplit(".", 1)[0]] if "." in name else model
            types[name] = self.param_type_of(name, param, owner)
        self._param_types = types
        self._param_shapes = param_shapes(model)
        return model, None

    def model_fn(
        self,
        params: nn.Module,
        batch: Batch,
        model_state: Any,
        mode: ForwardPassMode,
        rng: Any,
        update_batch_norm: bool,
    ) -> tuple[torch.Tensor, Any]:
        params.train(mode is ForwardPassMode.TRAIN)
        with self.autocast():
            if mode is ForwardPassMode.EVAL:
                with torch.inference_mode():
                    return params(batch["inputs"]).float(), model_state
            return params(batch["inputs"]).float(), model_state

    def autocast(self) -> contextlib.AbstractContextManager:
        """Mixed precision for sizes that declare `precision: bfloat16`: autocast runs matmuls
        and convolutions in bf16 and keeps parameters, norms, softmax and the loss in float32
        (outputs are cast back to float32 by model_fn)."""
        if self.precision == "bfloat16":
            return torch.autocast(device().type, dtype=torch.bfloat16)
        return contextlib.nullcontext()

    def loss_fn(
        self,
        targets: torch.Tensor,
        outputs: torch.Tensor,
        mask: torch.Tensor | None = None,
        label_smoothing: float = 0.0,
    ) -> dict[str, Any]:
        if self.loss_type is LossType.SOFTMAX_CROSS_ENTROPY:
            logits = outputs.reshape(-1, outputs.shape[-1])
            per_example = nn.functional.cross_entropy(
                logits, targets.reshape(-1), reduction="none", label_smoothing=label_smoothing
            ).reshape(targets.shape)
        elif self.loss_type is LossType.MEAN_ABSOLUTE_ERROR:
            per_example = (outputs - targets).abs()
        else:
            per_example = (outputs - targets).square()
        if mask is None:
            return {
                "summed": per_example.sum(),
                "n_valid_examples": per_example.numel(),
                "per_example": per_example,
            }
        mask = mask.to(per_example.dtype)
        return {
            "summed": (per_example * mask).sum(),
            "n_valid_examples": mask.sum(),
            "per_example": per_example * mask,
        }


# ---- the optimizer-plugin adapter: make_optimizer -> the full submission API --------------------


def plugin_to_full(module: Any) -> dict[str, Any]:
    """Wrap a plugin's `make_optimizer(params, hparams, workload)` as the full API functions.

    The standard step: forward in train mode, mean loss over valid examples (with the
    hyperparameter `label_smoothing` if the search space has one), backward, optional global
    gradient clipping (`grad_clip_norm`), optimizer step, scheduler step.
    """
    make_optimizer = module.make_optimizer

    def init_optimizer_state(workload, model_params, model_state, hyperparameters, rng):
        params = [p for _, p in model_params.named_parameters()]
        optimizer, scheduler = make_optimizer(params, hyperparameters, workload)
        if not isinstance(optimizer, torch.optim.Optimizer):
            raise TypeError(
                "make_optimizer must return (torch.optim.Optimizer, LR scheduler or None), "
                f"got {type(optimizer).__name__} first"
            )
        return {"optimizer": optimizer, "scheduler": scheduler, "last_loss": None}

    def update_params(
        workload,
        current_param_container,
        current_params_types,
        model_state,
        hyperparameters,
        batch,
        loss_type,
        optimizer_state,
        eval_results,
        global_step,
        rng,
    ):
        model = current_param_container
        optimizer = optimizer_state["optimizer"]
        optimizer.zero_grad(set_to_none=True)
        outputs, new_model_state = workload.model_fn(
            model, batch, model_state, ForwardPassMode.TRAIN, rng, update_batch_norm=True
        )
        smoothing = hparam(hyperparameters, "label_smoothing", 0.0)
        loss_dict = workload.loss_fn(batch["targets"], outputs, batch.get("weights"), smoothing)
        loss = loss_dict["summed"] / loss_dict["n_valid_examples"]
        loss.backward()
        clip = hparam(hyperparameters, "grad_clip_norm", None)
        if clip:
            torch.nn.utils.clip_grad_norm_(model.parameters(), max_norm=float(clip))
        optimizer.step()
        if optimizer_state["scheduler"] is not None:
            optimizer_state["scheduler"].step()
        optimizer_state["last_loss"] = loss.detach()
        return optimizer_state, model, new_model_state

    functions = {
        "init_optimizer_state": init_optimizer_state,
        "update_params": update_params,
        "data_selection": next_batch,
        "prepare_for_eval": getattr(module, "prepare_for_eval", None),
    }
    if hasattr(module, "get_batch_size"):
        functions["get_batch_size"] = module.get_batch_size
    return functions


def warmup_cosine(
    optimizer: torch.optim.Optimizer,
    warmup_steps: int,
    total_steps: int,
    final_lr_factor: float = 0.0,
) -> torch.optim.lr_scheduler.LambdaLR:
    """Linear warmup from 0 to the base LR over `warmup_steps`, then cosine decay to
    `final_lr_factor` × base LR at `total_steps` (held there afterwards).

    Same schedule as `algoperf.frameworks.jax.warmup_cosine` (optax.warmup_cosine_decay_schedule).
    """
    warmup_steps = max(1, int(warmup_steps))
    decay_steps = max(1, int(total_steps) - warmup_steps)

    def factor(step: int) -> float:
        if step < warmup_steps:
            return step / warmup_steps
        progress = min(1.0, (step - warmup_steps) / decay_steps)
        return final_lr_factor + (1 - final_lr_factor) * 0.5 * (1 + np.cos(np.pi * progress))

    return torch.optim.lr_scheduler.LambdaLR(optimizer, factor)


def default_threads() -> int:
    return int(os.environ.get("ALGOPERF_THREADS", os.cpu_count() or 1))


# ---- the model's state between the worker and the supervisor (algoperf.ipc) ---------------------


def _model_state(model: nn.Module) -> dict[str, torch.Tensor]:
    """Parameters and buffers by name (tied tensors once, under their first name)."""
    state, seen = {}, set()
    for name, tensor in model.state_dict(keep_vars=True).items():
        if id(tensor) not in seen:
            seen.add(id(tensor))
            state[name] = tensor
    return state


def state_layout(model: nn.Module, model_state: Any) -> list[tuple[str, str, tuple[int, ...], int]]:
    """(name, dtype, shape, bytes) of every array the supervisor needs to evaluate the model."""
    return [
        (name, str(t.dtype), tuple(t.shape), t.numel() * t.element_size())
        for name, t in _model_state(model).items()
    ]


def state_views(block: Any, layout: list) -> dict[str, torch.Tensor]:
    """Tensors over a shared block (no copy), one per layout entry."""
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
    """Worker: move the model's CPU tensors into the shared block, so handing them over costs
    nothing while the optimizer updates them in place."""
    with torch.no_grad():
        for name, tensor in _model_state(model).items():
            view = views[name]
            if tensor.device.type != "cpu" or view.shape != tensor.shape or view.dtype != tensor.dtype:
                continue
            view.copy_(tensor)
            tensor.data = view


def export_state(model: nn.Module, model_state: Any, views: dict[str, torch.Tensor]) -> None:
    """Worker, at the end of a timed interval: make the shared block hold the model's current
    state (copies only tensors a submission moved out of it, or that live on a GPU)."""
    from algoperf.rules import check_param_shapes

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
    """Supervisor: copy the worker's state into the supervisor's own model."""
    with torch.no_grad():
        for name, tensor in _model_state(model).items():
            tensor.copy_(views[name])
    return model, model_state
