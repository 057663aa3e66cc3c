"""Schedule-free AdamW in optax (`optax.contrib.schedule_free`): the full submission API.

The same rule as torch.py (Meta's `schedulefree.AdamWScheduleFree` with r = 0; see
`build_optimizer` for the warmup step where `optax.contrib.schedule_free_adamw` differs).
Gradients are taken at the train point y, evaluation uses the average x. optax keeps y as the
parameters and z in its state (x = (y - (1 - b1) z) / b1), so `prepare_for_eval` hands the
runner x and keeps y in the optimizer state; the next `update_params` resumes from that y
(exactly, not through the inverse map). No learning-rate schedule: a linear warmup, then a
constant rate.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import optax

from algoperf.frameworks.jax import make_train_step

# Batch size per workload (base name; variants share it). The full API asks for it by name
# alone, so a workload missing here is an error to fix, not a silent guess.
BATCH_SIZES = {"fashion_mnist": 128, "shakespeare": 32, "qm9": 128}  # the workloads' defaults

_eval_params = jax.jit(optax.contrib.schedule_free_eval_params)


def get_batch_size(workload_name):
    for name, batch_size in BATCH_SIZES.items():
        if workload_name == name or workload_name.startswith(name + "_"):
            return batch_size
    raise ValueError(
        f"schedule_free_adamw has no batch size for workload {workload_name!r}: "
        f"add it to BATCH_SIZES in {__file__}."
    )


def build_optimizer(hyperparameters, step_hint: int) -> optax.GradientTransformation:
    """The optimizer alone (no model needed), so tests can compare it with the torch side.

    `optax.contrib.schedule_free_adamw` itself is not used: during warmup it is one step off
    torch's rule. Its averaging weight reads the schedule at the 1-based step count (lr_1 at
    the first step) while the inner `scale_by_learning_rate` counts from 0 (lr_0 = 0: the
    first step does not move). schedulefree (the authors' code) uses the same lr_(k+1) =
    lr * (k + 1) / warmup_steps for both at step k. So below is optax's own composition with
    the inner schedule shifted by one step; after warmup the two are identical anyway.
    """
    peak_lr = hyperparameters.learning_rate
    warmup_steps = int(hyperparameters.warmup_fraction * step_hint)

    def warmup(count):  # count 1, 2, ...: the 1-based step
        if warmup_steps == 0:
            return jnp.asarray(peak_lr, jnp.float32)
        return peak_lr * jnp.minimum(1.0, count / warmup_steps)

    adam_without_momentum = optax.chain(
        optax.scale_by_rms(decay=hyperparameters.beta2, eps=1e-8, eps_in_sqrt=False, bias_correction=True),
        optax.add_decayed_weights(hyperparameters.weight_decay),  # at y, scaled by the lr
        optax.scale_by_learning_rate(lambda count: warmup(count + 1)),  # count from 0 here
    )
    return optax.contrib.schedule_free(
        adam_without_momentum,
        learning_rate=warmup,  # read at schedule-free's 1-based step count
        b1=1.0 - hyperparameters.one_minus_beta1,
        weight_lr_power=2.0,
    )


def init_optimizer_state(workload, model_params, model_state, hyperparameters, rng):
    tx = build_optimizer(hyperparameters, workload.step_hint)
    # Copies: the state's z starts as the parameters, and the train step donates both trees.
    opt_state = jax.tree.map(jnp.copy, tx.init(model_params))
    train_step = make_train_step(workload, tx, float(hyperparameters.label_smoothing))
    return {
        "opt_state": opt_state,
        "train_step": train_step,
        "train_params": None,
        "last_loss": None,
    }


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
    # After an evaluation the runner hands back x; gradients must be taken at y.
    params = optimizer_state["train_params"]
    if params is None:
        params = current_param_container
    optimizer_state["train_params"] = None
    params, opt_state, new_model_state, loss = optimizer_state["train_step"](
        params,
        optimizer_state["opt_state"],
        model_state,
        batch,
        jax.random.key(0) if rng is None else rng,
    )
    optimizer_state["opt_state"] = opt_state
    optimizer_state["last_loss"] = loss
    return optimizer_state, params, new_model_state


def prepare_for_eval(
    workload,
    current_param_container,
    current_params_types,
    model_state,
    hyperparameters,
    loss_type,
    optimizer_state,
    eval_results,
    global_step,
    rng,
):
    if optimizer_state["train_params"] is not None:  # already holding x (two evals, no step)
        return optimizer_state, current_param_container, model_state
    optimizer_state["train_params"] = current_param_container
    eval_params = _eval_params(optimizer_state["opt_state"], current_param_container)
    return optimizer_state, eval_params, model_state


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
    return next(input_queue)
