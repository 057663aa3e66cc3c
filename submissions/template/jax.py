"""TEMPLATE optimizer plugin (JAX): AdamW with linear warmup and cosine decay, in optax.

The same optimizer as torch.py, update for update (tests/test_update_parity.py checks every
submission that has both files). Edit `make_optimizer` below, then
`algoperf check my_optimizer --framework jax`. Replace this docstring with one or two lines
saying what your optimizer is.

The harness owns the training step (loss, gradient, `tx.update`, `optax.apply_updates`,
compiled once with jax.jit); you own the optax transformation, schedule included.
"""

# Import what your optimizer needs: optax, jax, your own code. Never import from the runner,
# the scorer or a workload's internals.
import optax

# The harness's warmup + cosine schedule (an optax schedule), identical step for step to the
# torch one; any optax schedule works too.
from algoperf.frameworks.jax import warmup_cosine


def make_optimizer(hparams, workload):
    """Build this trial's optax.GradientTransformation; called once, before the first step.

    hparams:  this trial's hyperparameters, one per entry of search_space.yaml, read as
              attributes (`hparams.learning_rate`); a name not in the search space raises.
              `label_smoothing` and `grad_clip_norm`, when present, are applied by the harness.
    workload: what the benchmark tells a submission: `step_hint` (steps the target-setting run
              needed: size schedules by it), `param_types` (torch-style dotted names ->
              algoperf.spec.ParamType), `param_shapes`, `loss_type`, `full_name`,
              `num_train_examples`, `default_batch_size`. To skip weight decay on biases and
              norms, pass optax a mask built from the parameter tree:
                  skip = {ParamType.BIAS, ParamType.NORM_SCALE, ParamType.NORM_BIAS}
                  decayed = {k: t not in skip for k, t in workload.param_types.items()}
                  optax.adamw(..., mask=lambda params: unflatten_params(decayed, params))
              (with `from algoperf.spec import ParamType` and
              `from algoperf.frameworks.jax import unflatten_params`).

    Returns an optax.GradientTransformation; the schedule lives inside it (optax counts steps).
    Everything in it is traced by jax.jit, so use jnp, not Python control flow on values.
    """
    # Warm up linearly for a fraction of the step hint, then decay to 0 at the step hint.
    warmup_steps = int(hparams.warmup_fraction * workload.step_hint)
    schedule = warmup_cosine(hparams.learning_rate, warmup_steps, workload.step_hint)
    return optax.adamw(
        learning_rate=schedule,  # a schedule (step -> lr) or a constant
        b1=1.0 - hparams.one_minus_beta1,  # 1 - beta1 is tuned on a log scale
        b2=hparams.beta2,
        eps=1e-8,  # a fixed value: not every constant needs to be a hyperparameter
        weight_decay=hparams.weight_decay,  # decoupled: p <- p - lr * weight_decay * p
    )


# Optional: the training length. After this many steps the algorithm is done and the trial ends
# (scored at its final evaluation), instead of running on to the time budget at a learning rate
# the schedule has already taken to zero. Leave it out to train until the target or the budget.
def training_steps(workload, hparams):
    return workload.step_hint  # where the schedule above ends


# Optional: choose the batch size per workload (otherwise `workload.default_batch_size`).
#
# def get_batch_size(workload_name):
#     return {"fashion_mnist": 256}.get(workload_name, 128)
