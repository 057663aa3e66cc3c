"""AdamW at a batch size of its own choosing per workload, with the learning rate and the
schedule scaled to that batch size: an example of the full submission API's `get_batch_size`.

(An optimizer plugin may define `get_batch_size` too; the full API is spelled out here to show
what the harness's standard step does.) The hyperparameters are those of the workload's
default batch size; at batch B = k x default this submission uses
  - learning rate x sqrt(k): the square-root scaling rule for Adam (Malladi et al. 2022,
    "On the SDEs and Scaling Rules for Adaptive Gradient Algorithms"),
  - a schedule of step_hint / k steps: the same number of examples as the step hint; the
    trial ends when the schedule does (`update_params` raises TrainingComplete).
On a CPU a bigger batch costs less per example (fewer, larger kernels), so the same examples
can take less time; whether that beats the default is what the benchmark measures.
"""

from __future__ import annotations

import math

import torch

from algoperf.frameworks.torch import warmup_cosine
from algoperf.spec import ForwardPassMode, TrainingComplete

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
    optimizer = torch.optim.AdamW(
        model_params.parameters(),
        lr=learning_rate,
        betas=(1.0 - hyperparameters.one_minus_beta1, hyperparameters.beta2),
        eps=1e-8,
        weight_decay=hyperparameters.weight_decay,
    )
    scheduler = warmup_cosine(optimizer, warmup_steps, total_steps)
    return {"optimizer": optimizer, "scheduler": scheduler, "last_loss": None, "total_steps": total_steps}


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
    model = current_param_container
    optimizer = optimizer_state["optimizer"]
    optimizer.zero_grad(set_to_none=True)
    outputs, new_model_state = workload.model_fn(
        model, batch, model_state, ForwardPassMode.TRAIN, rng, update_batch_norm=True
    )
    loss_dict = workload.loss_fn(
        batch["targets"], outputs, batch.get("weights"), hyperparameters.label_smoothing
    )
    loss = loss_dict["summed"] / loss_dict["n_valid_examples"]  # mean over valid examples
    loss.backward()
    optimizer.step()
    optimizer_state["scheduler"].step()
    # The runner reads last_loss to stop a diverged trial; keep it a tensor (no sync here).
    optimizer_state["last_loss"] = loss.detach()
    return optimizer_state, model, new_model_state


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
