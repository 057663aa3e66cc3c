"""The torch optimizer-plugin adapter: `make_optimizer(params, hparams, workload)` -> the full
submission API."""

from __future__ import annotations

from types import ModuleType
from typing import Any

import torch
from torch import nn

from algoperf.frameworks.backend import UpdateCall, full_api
from algoperf.spec import ForwardPassMode, hparam


def plugin_to_full(module: ModuleType) -> dict[str, Any]:
    """Wrap a plugin's `make_optimizer(params, hparams, workload)` as the full API functions.

    The standard step: forward in train mode (with the hyperparameter `dropout_rate` if the
    search space has one), mean loss over valid examples (with the hyperparameter
    `label_smoothing` if the search space has one), backward, optional global gradient clipping
    (`grad_clip_norm`), optimizer step, scheduler step.
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

    def standard_step(call: UpdateCall) -> tuple[Any, nn.Module, Any]:
        model, optimizer_state, hyperparameters = call.params, call.optimizer_state, call.hyperparameters
        optimizer = optimizer_state["optimizer"]
        optimizer.zero_grad(set_to_none=True)
        outputs, new_model_state = call.workload.model_fn(
            model,
            call.batch,
            call.model_state,
            ForwardPassMode.TRAIN,
            call.rng,
            update_batch_norm=True,
            dropout_rate=hparam(hyperparameters, "dropout_rate", None),
        )
        smoothing = hparam(hyperparameters, "label_smoothing", 0.0)
        loss_dict = call.workload.loss_fn(
            call.batch["targets"], outputs, call.batch.get("weights"), smoothing
        )
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

    return full_api(module, init_optimizer_state, standard_step)
