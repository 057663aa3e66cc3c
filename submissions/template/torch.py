"""TEMPLATE optimizer plugin (PyTorch): AdamW with linear warmup and cosine decay.

Start a submission with `algoperf new-submission my_optimizer`, which copies this folder to
submissions/my_optimizer/. Edit `make_optimizer` below, then `algoperf check my_optimizer`
validates it and runs two real training steps. Replace this docstring with one or two lines
saying what your optimizer is.

The harness owns the training step (forward, loss, backward, `optimizer.step()`, then
`scheduler.step()`, once per step); you own the optimizer and its schedule. See README.md for
the rules and for the full submission API, when you need to own the step as well.
"""

# Import what your optimizer needs: torch, a library (pytorch_optimizer, ...), your own code.
# Never import from the runner, the scorer or a workload's internals.
import torch

# The harness's warmup + cosine schedule, identical step for step to the JAX one; any
# torch.optim.lr_scheduler (or None) works too.
from algoperf.frameworks.torch import warmup_cosine


def make_optimizer(params, hparams, workload):
    """Build this trial's optimizer and LR scheduler; called once, before the first step.

    params:   the model's parameters, in `model.named_parameters()` order, as torch.optim takes
              them. Their kinds are in `workload.param_types` (name -> algoperf.spec.ParamType),
              in the same order, e.g. to skip weight decay on biases and norms:
                  skip = {ParamType.BIAS, ParamType.NORM_SCALE, ParamType.NORM_BIAS}
                  types = list(workload.param_types.values())
                  decay = [p for p, t in zip(params, types) if t not in skip]
                  no_decay = [p for p, t in zip(params, types) if t in skip]
                  params = [{"params": decay}, {"params": no_decay, "weight_decay": 0.0}]
              (with `from algoperf.spec import ParamType`).
    hparams:  this trial's hyperparameters, one per entry of search_space.yaml, read as
              attributes (`hparams.learning_rate`); a name not in the search space raises.
              `label_smoothing` and `grad_clip_norm`, when present, are applied by the harness.
    workload: what the benchmark tells a submission: `step_hint` (steps the target-setting run
              needed: size schedules by it), `param_types`, `param_info` (each parameter's
              role -- input layer, hidden, output head -- and layout), `param_shapes`,
              `loss_type`, `full_name`, `num_train_examples`, `default_batch_size`.

    Returns (torch.optim.Optimizer, LR scheduler or None), or lists of them (e.g. Muon for
    hidden matrices beside AdamW for the rest). The harness calls `scheduler.step()` after
    every `optimizer.step()`. README.md lists what else a plugin can ask for (a closure, the
    model's layers, its own diagnostics).
    """
    optimizer = torch.optim.AdamW(
        params,
        lr=hparams.learning_rate,  # the peak learning rate; the scheduler scales it per step
        betas=(1.0 - hparams.one_minus_beta1, hparams.beta2),  # 1 - beta1 is tuned on a log scale
        eps=1e-8,  # a fixed value: not every constant needs to be a hyperparameter
        weight_decay=hparams.weight_decay,  # decoupled: p <- p - lr * weight_decay * p
    )
    # Warm up linearly for a fraction of the step hint, then decay to 0 at the step hint.
    warmup_steps = int(hparams.warmup_fraction * workload.step_hint)
    scheduler = warmup_cosine(optimizer, warmup_steps, total_steps=workload.step_hint)
    return optimizer, scheduler


# Optional: the training length. After this many steps the algorithm is done and the trial ends
# (scored at its final evaluation), instead of running on to the time budget at a learning rate
# the schedule has already taken to zero. Leave it out to train until the target or the budget.
def training_steps(workload, hparams):
    return workload.step_hint  # where the schedule above ends


# Optional: choose the batch size per workload (otherwise `workload.default_batch_size`).
# A bigger batch usually wants a bigger learning rate; see submissions/large_batch_adamw/.
#
# def get_batch_size(workload_name):
#     return {"fashion_mnist": 256}.get(workload_name, 128)


# Optional: prepare the weights that get evaluated (timed), e.g. swap in an EMA. Return
# (optimizer_state, params, model_state); see submissions/schedule_free_adamw/ for a use.
#
# def prepare_for_eval(workload, current_param_container, current_params_types, model_state,
#                      hyperparameters, loss_type, optimizer_state, eval_results, global_step,
#                      rng):
#     return optimizer_state, current_param_container, model_state
