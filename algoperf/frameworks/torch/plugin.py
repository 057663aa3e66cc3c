"""The torch optimizer-plugin adapter: `make_optimizer(params, hparams, workload)` -> the full
submission API."""

from __future__ import annotations

import inspect
from types import ModuleType
from typing import Any

import torch
from torch import nn

from algoperf.frameworks.backend import UpdateCall, full_api, step_kind_of
from algoperf.spec import ForwardPassMode, hparam


def plugin_to_full(module: ModuleType) -> dict[str, Any]:
    """Wrap a plugin's `make_optimizer(params, hparams, workload[, model])` as the full API.

    make_optimizer returns (optimizer, scheduler): each may be one object or a list (several
    optimizers over disjoint parameter sets, e.g. Muon for matrices beside AdamW for the rest;
    several schedulers), the scheduler None. A `model` parameter receives the torch module, for
    optimizers that hook its layers (activations, output gradients).

    The standard step: forward in train mode (with the hyperparameter `dropout_rate` if the
    search space has one), mean loss over valid examples (with the hyperparameter
    `label_smoothing` if the search space has one), backward, optional global gradient clipping
    (`grad_clip_norm`), `step()` of every optimizer, `step()` of every scheduler. The plugin's
    `step_kind` changes the middle (algoperf.spec.STEP_KINDS):
      "closure":      after the backward, `optimizer.step(closure)`; the closure zeroes the
                      gradients, runs forward and backward again (clipped alike) and returns
                      the loss (SAM, line searches).
      "forward_only": no backward at all: `optimizer.step(closure)` with a closure that runs
                      the forward pass without gradients and returns the loss (zeroth-order
                      methods); `step` returns the loss at the current parameters.
    """
    make_optimizer = module.make_optimizer
    kind = step_kind_of(module)
    wants_model = "model" in inspect.signature(make_optimizer).parameters

    def init_optimizer_state(workload, model_params, model_state, hyperparameters, rng):
        params = [p for _, p in model_params.named_parameters()]
        extra = {"model": model_params} if wants_model else {}
        made = make_optimizer(params, hyperparameters, workload, **extra)
        optimizers, schedulers = checked_optimizers(made, model_params, kind)
        return {
            "optimizer": made[0],  # as make_optimizer returned it: what `diagnostics` receives
            "optimizers": optimizers,
            "schedulers": schedulers,
            "last_loss": None,
        }

    def standard_step(call: UpdateCall) -> tuple[Any, nn.Module, Any]:
        model, optimizer_state, hyperparameters = call.params, call.optimizer_state, call.hyperparameters
        optimizers = optimizer_state["optimizers"]
        smoothing = hparam(hyperparameters, "label_smoothing", 0.0)
        dropout_rate = hparam(hyperparameters, "dropout_rate", None)
        clip = hparam(hyperparameters, "grad_clip_norm", None)
        new_model_state = call.model_state
        # torch draws dropout masks from its global generator: every evaluation of this step's
        # loss (the first, and each closure call) starts from the same generator state, so a
        # closure sees the same masks as the gradient it re-evaluates.
        devices = list(range(torch.cuda.device_count())) if torch.cuda.is_initialized() else []
        generator_state = _generator_state(devices) if kind != "gradient" else None

        def mean_loss() -> torch.Tensor:
            nonlocal new_model_state
            if generator_state is not None:
                _set_generator_state(generator_state, devices)
            outputs, new_model_state = call.workload.model_fn(
                model,
                call.batch,
                call.model_state,
                ForwardPassMode.TRAIN,
                call.rng,
                update_batch_norm=True,
                dropout_rate=dropout_rate,
            )
            loss_dict = call.workload.loss_fn(
                call.batch["targets"], outputs, call.batch.get("weights"), smoothing
            )
            return loss_dict["summed"] / loss_dict["n_valid_examples"]

        def gradient() -> torch.Tensor:
            for optimizer in optimizers:
                optimizer.zero_grad(set_to_none=True)
            loss = mean_loss()
            loss.backward()
            if clip:
                torch.nn.utils.clip_grad_norm_(model.parameters(), max_norm=float(clip))
            return loss.detach()

        if kind == "forward_only":

            @torch.no_grad()
            def forward_closure() -> torch.Tensor:
                return mean_loss().detach()

            loss = optimizers[0].step(forward_closure)
            if loss is None:
                loss = forward_closure()
        else:
            loss = gradient()
            for optimizer in optimizers:
                if kind == "closure":
                    optimizer.step(gradient)
                else:
                    optimizer.step()
        for scheduler in optimizer_state["schedulers"]:
            scheduler.step()
        optimizer_state["last_loss"] = torch.as_tensor(loss).detach()
        return optimizer_state, model, new_model_state

    return full_api(module, init_optimizer_state, standard_step, diagnostics_input="optimizer")


def _generator_state(devices: list[int]) -> tuple[Any, list[Any]]:
    return torch.get_rng_state(), [torch.cuda.get_rng_state(d) for d in devices]


def _set_generator_state(state: tuple[Any, list[Any]], devices: list[int]) -> None:
    torch.set_rng_state(state[0])
    for device, device_state in zip(devices, state[1], strict=True):
        torch.cuda.set_rng_state(device_state, device)


def _as_list(value: Any) -> list[Any]:
    if value is None:
        return []
    return list(value) if isinstance(value, list | tuple) else [value]


def checked_optimizers(made: Any, model: nn.Module, kind: str) -> tuple[list[Any], list[Any]]:
    """make_optimizer's (optimizers, schedulers) as lists, after checking that every trainable
    parameter belongs to exactly one optimizer (one left out would silently never train)."""
    if not (isinstance(made, tuple) and len(made) == 2):
        raise TypeError(
            "make_optimizer must return (optimizer, scheduler): a torch.optim.Optimizer or a list "
            "of them, and an LR scheduler, a list of them, or None; "
            f"got {type(made).__name__}"
        )
    optimizers, schedulers = _as_list(made[0]), _as_list(made[1])
    wrong = [type(o).__name__ for o in optimizers if not isinstance(o, torch.optim.Optimizer)]
    if wrong or not optimizers:
        raise TypeError(
            "make_optimizer must return (torch.optim.Optimizer or a list of them, LR scheduler(s) "
            f"or None), got {', '.join(wrong) or 'no optimizer'} first"
        )
    bad = [type(s).__name__ for s in schedulers if not callable(getattr(s, "step", None))]
    if bad:
        raise TypeError(f"make_optimizer's schedulers must have a step() method; {', '.join(bad)} has none")
    if kind != "gradient" and len(optimizers) > 1:
        raise TypeError(
            f"step_kind = {kind!r} hands one closure to one optimizer; make_optimizer returned "
            f"{len(optimizers)}. Combine them into one torch.optim.Optimizer."
        )
    owners: dict[int, int] = {}
    for index, optimizer in enumerate(optimizers):
        for group in optimizer.param_groups:
            for p in group["params"]:
                if id(p) in owners:
                    raise ValueError(
                        f"a parameter of shape {tuple(p.shape)} is in more than one optimizer (or "
                        "twice in one); give each parameter to exactly one optimizer"
                    )
                owners[id(p)] = index
    missing = [n for n, p in model.named_parameters() if p.requires_grad and id(p) not in owners]
    if missing:
        raise ValueError(
            f"make_optimizer left {len(missing)} parameter(s) out of every optimizer, e.g. "
            f"{', '.join(missing[:3])}; they would never train. Give each parameter to one optimizer "
            "(a learning rate of 0 if it must stay fixed)."
        )
    return optimizers, schedulers
