"""AdamW at a batch size of its own choosing per workload (optax), with the learning rate and
the schedule scaled to it; the same rules as torch.py (see there)."""

from __future__ import annotations

import math

import jax
import jax.numpy as jnp
import optax

from algoperf.frameworks.jax import make_train_step, warmup_cosine
from algoperf.spec import TrainingComplete

# Batch size per workload (base name; variants share it). The full API asks for it by name
# alone, so a workload missing here is an error to fix, not a silent guess.
BATCH_SIZES = {"fashion_mnist": 256, "shakespeare": 64, "qm9": 256}  # 2x the defaults


def get_batch_size(workload_name):
    for name, batch_size in BATCH_SIZES.items():
        if workload_name == name or workload_name.startswith(name + "_"):
            return batch_size
    raise ValueError(
        f"large_batch_adamw has no batch size for workload {workload_name!r}: "
        f"add it to BATCH_SIZES in {__file__}."
    )


def scaled_schedule(workload, hyperparameters) -> tuple[float, int, int]:
    """(peak learning rate, warmup steps, total steps) at this submission's batch size."""
    batch_size = get_batch_size(workload.full_name)
    scale = batch_size / workload.default_batch_size
    total_steps = max(1, math.ceil(workload.step_hint / scale))
    warmup_steps = int(hyperparameters.warmup_fraction * total_steps)
    return hyperparameters.learning_rate * math.sqrt(scale), warmup_steps, total_steps


def init_optimizer_state(workload, model_params, model_state, hyperparameters, rng):
    learning_rate, warmup_steps, total_steps = scaled_schedule(workload, hyperparameters)
    tx = optax.adamw(
        learning_rate=warmup_cosine(learning_rate, warmup_steps, total_steps),
        b1=1.0 - hyperparameters.one_minus_beta1,
        b2=hyperparameters.beta2,
        eps=1e-8,
        weight_decay=hyperparameters.weight_decay,
    )
    # Copies: the compiled step donates the parameter and state buffers.
    opt_state = jax.tree.map(jnp.copy, tx.init(model_params))
    train_step = make_train_step(workload, tx, float(hyperparameters.label_smoothing))
    return {"opt_state": opt_state, "train_step": train_step, "last_loss": None, "total_steps": total_steps}


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
    if global_step >= optimizer_state["total_steps"]:
        raise TrainingComplete  # the schedule has ended: the trial ends here
    params, opt_state, new_model_state, loss = optimizer_state["train_step"](
        current_param_container,
        optimizer_state["opt_state"],
        model_state,
        batch,
        jax.random.key(0) if rng is None else rng,
    )
    optimizer_state["opt_state"] = opt_state
    optimizer_state["last_loss"] = loss
    return optimizer_state, params, new_model_state


def data_selection(
    workload,
    input_queue,
    optimizer_state,
    current_param_container,
    model_state,
    hyperparameters,
    global_step,
    rng,
):
    # The runner builds input_queue at get_batch_size's batch size.
    return next(input_queue)
