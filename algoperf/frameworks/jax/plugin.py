"""The JAX optimizer-plugin adapter: `make_optimizer(hparams, workload)` -> an
optax.GradientTransformation, run by one compiled standard step."""

from __future__ import annotations

from collections.abc import Callable
from types import ModuleType
from typing import Any

import jax
import jax.numpy as jnp
import optax

from algoperf.frameworks.backend import UpdateCall, full_api
from algoperf.frameworks.jax.runtime import device
from algoperf.spec import ForwardPassMode, hparam
from algoperf.workload import Workload


def make_train_step(
    workload: Workload,
    tx: optax.GradientTransformation,
    label_smoothing: float = 0.0,
    grad_clip_norm: float | None = None,
    dropout_rate: float | None = None,
) -> Callable[..., tuple[Any, Any, Any, jax.Array]]:
    """The standard step, compiled once: (params, opt_state, model_state, batch, rng) ->
    (params, opt_state, model_state, mean loss). params and opt_state buffers are donated.
    `dropout_rate` (None: the workload's default) is fixed for the step's lifetime; the
    dropout masks are drawn from `rng`."""

    def mean_loss(params, model_state, batch, rng):
        outputs, new_model_state = workload.model_fn(
            params,
            batch,
            model_state,
            ForwardPassMode.TRAIN,
            rng,
            update_batch_norm=True,
            dropout_rate=dropout_rate,
        )
        loss = workload.loss_fn(batch["targets"], outputs, batch.get("weights"), label_smoothing)
        return loss["summed"] / loss["n_valid_examples"], new_model_state

    def step(params, opt_state, model_state, batch, rng):
        (loss, new_model_state), grads = jax.value_and_grad(mean_loss, has_aux=True)(
            params, model_state, batch, rng
        )
        if grad_clip_norm:
            # torch.nn.utils.clip_grad_norm_'s rule, eps included, so both frameworks clip alike.
            scale = jnp.minimum(1.0, grad_clip_norm / (optax.tree.norm(grads) + 1e-6))
            grads = jax.tree.map(lambda g: g * scale, grads)
        updates, opt_state = tx.update(grads, opt_state, params)
        return optax.apply_updates(params, updates), opt_state, new_model_state, loss

    return jax.jit(step, donate_argnums=(0, 1))


def plugin_to_full(module: ModuleType) -> dict[str, Any]:
    """Wrap a plugin's `make_optimizer(hparams, workload) -> optax.GradientTransformation` as the
    full API functions.

    The standard step (`make_train_step`): forward in train mode (with the hyperparameter
    `dropout_rate` if the search space has one, fixed per trial so it is compiled in), mean loss
    over valid examples (with the hyperparameter `label_smoothing` if the search space has one),
    gradient, optional global gradient clipping (`grad_clip_norm`), `tx.update`,
    `optax.apply_updates`.
    optimizer_state = {"opt_state", "last_loss" (device scalar), "train_step" (compiled)}.
    """
    make_optimizer = module.make_optimizer

    def init_optimizer_state(workload, model_params, model_state, hyperparameters, rng):
        tx = make_optimizer(hyperparameters, workload)
        if not (callable(getattr(tx, "init", None)) and callable(getattr(tx, "update", None))):
            raise TypeError(
                f"make_optimizer must return an optax.GradientTransformation, got {type(tx).__name__}"
            )
        # Copies (a transformation may keep references to params, and both trees are donated),
        # committed to the device like the step's outputs, so step 2 does not compile again.
        opt_state = jax.device_put(jax.tree.map(jnp.copy, tx.init(model_params)), device())
        clip = hparam(hyperparameters, "grad_clip_norm", None)
        dropout_rate = hparam(hyperparameters, "dropout_rate", None)
        train_step = make_train_step(
            workload,
            tx,
            float(hparam(hyperparameters, "label_smoothing", 0.0)),
            float(clip) if clip else None,
            None if dropout_rate is None else float(dropout_rate),
        )
        return {"opt_state": opt_state, "last_loss": None, "train_step": train_step}

    def standard_step(call: UpdateCall) -> tuple[Any, Any, Any]:
        optimizer_state = call.optimizer_state
        params, opt_state, new_model_state, loss = optimizer_state["train_step"](
            call.params,
            optimizer_state["opt_state"],
            call.model_state,
            call.batch,
            jax.random.key(0) if call.rng is None else call.rng,
        )
        optimizer_state["opt_state"] = opt_state
        optimizer_state["last_loss"] = loss
        return optimizer_state, params, new_model_state

    return full_api(module, init_optimizer_state, standard_step)
