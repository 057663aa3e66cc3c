"""Schedule-free AdamW (Defazio et al. 2024, "The Road Less Scheduled"), Meta's `schedulefree`
package: an example of the full submission API.

Why the full API: schedule-free training keeps two points. Gradients are taken at y (the
"train" point, held in the model's parameters during training); the weights worth evaluating
are the average x. `optimizer.eval()` swaps x into the parameters in place and
`optimizer.train()` swaps y back, so `prepare_for_eval` (timed, called before every evaluation)
switches to eval mode and `update_params` switches back before each step. No learning-rate
schedule: a linear warmup, then a constant rate; the averaging does the annealing.

The model has no BatchNorm (fashion_mnist uses GroupNorm); a model with batch statistics would
need them recomputed at x in prepare_for_eval.
"""

from __future__ import annotations

import schedulefree

from algoperf.spec import ForwardPassMode

# Batch size per workload (base name; variants share it). The full API asks for it by name
# alone, so a workload missing here is an error to fix, not a silent guess.
BATCH_SIZES = {"fashion_mnist": 128, "shakespeare": 32, "qm9": 128}  # the workloads' defaults


def get_batch_size(workload_name):
    for name, batch_size in BATCH_SIZES.items():
        if workload_name == name or workload_name.startswith(name + "_"):
            return batch_size
    raise ValueError(
        f"schedule_free_adamw has no batch size for workload {workload_name!r}: "
        f"add it to BATCH_SIZES in {__file__}."
    )


def build_optimizer(params, hyperparameters, step_hint: int) -> schedulefree.AdamWScheduleFree:
    """The optimizer alone (no model needed), so tests can compare it with the JAX side."""
    return schedulefree.AdamWScheduleFree(
        params,
        lr=hyperparameters.learning_rate,
        betas=(1.0 - hyperparameters.one_minus_beta1, hyperparameters.beta2),
        eps=1e-8,
        weight_decay=hyperparameters.weight_decay,  # at y, scaled by the lr, as optax's
        warmup_steps=int(hyperparameters.warmup_fraction * step_hint),
        r=0.0,  # uniform weighting of the average after warmup (optax has no r)
        weight_lr_power=2.0,  # warmup steps weigh lr**2 in the average, as optax's default
    )


def init_optimizer_state(workload, model_params, model_state, hyperparameters, rng):
    optimizer = build_optimizer(model_params.parameters(), hyperparameters, workload.step_hint)
    optimizer.train()  # the optimizer starts in eval mode and refuses to step there
    return {"optimizer": optimizer, "last_loss": None}


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
    # After an evaluation the parameters hold x; gradients must be taken at y. A no-op when
    # the optimizer is already in train mode.
    optimizer.train()
    optimizer.zero_grad(set_to_none=True)
    outputs, new_model_state = workload.model_fn(
        model, batch, model_state, ForwardPassMode.TRAIN, rng, update_batch_norm=True
    )
    loss_dict = workload.loss_fn(
        batch["targets"], outputs, batch.get("weights"), hyperparameters.label_smoothing
    )
    loss = loss_dict["summed"] / loss_dict["n_valid_examples"]
    loss.backward()
    optimizer.step()
    # The runner reads last_loss to stop a diverged trial; keep it a tensor (no sync here).
    optimizer_state["last_loss"] = loss.detach()
    return optimizer_state, model, new_model_state


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
    # Swap the averaged weights x into the model; the runner evaluates what we return.
    optimizer_state["optimizer"].eval()
    return optimizer_state, current_param_container, model_state


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
