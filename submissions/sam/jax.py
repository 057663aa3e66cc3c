"""SAM around AdamW in optax (`optax.contrib.sam` in opaque mode: the ascent step and the second
gradient, through the harness's `grad_fn`, happen inside one update), linear warmup + cosine decay
of AdamW's learning rate. The same update rule as torch.py (tested; written out there)."""

import jax
import optax

from algoperf.frameworks.jax import until_step_hint, warmup_cosine

# pytorch-optimizer's SAM divides by |g| + 1e-12. optax.contrib.normalize divides by |g| alone,
# which turns an exactly zero gradient into NaN parameters for good (seen on qm9: a dead ReLU head
# predicting the batch median under the absolute-error loss); torch takes a plain AdamW step there.
PERTURB_EPS = 1e-12


def normalize():
    """optax.contrib.normalize with torch's eps: g / (|g| + eps), |g| over every parameter."""

    def scaled(updates, params):
        norm = optax.tree.norm(updates) + PERTURB_EPS
        return jax.tree.map(lambda g: g / norm, updates)

    return optax.stateless(scaled)


def make_optimizer(hparams, workload):
    warmup_steps = int(hparams.warmup_fraction * workload.step_hint)
    schedule = warmup_cosine(hparams.learning_rate, warmup_steps, workload.step_hint)
    outer = optax.adamw(
        schedule,
        b1=1.0 - hparams.one_minus_beta1,
        b2=hparams.beta2,
        eps=1e-8,
        weight_decay=hparams.weight_decay,
    )
    # w + rho g / (|g| + eps): sgd's step is minus rho times that, which sam negates into an ascent.
    ascent = optax.chain(normalize(), optax.sgd(hparams.rho))
    # sync_period 2: one ascent step, then the outer step with the gradient there (plain SAM).
    return optax.contrib.sam(outer, ascent, sync_period=2, opaque_mode=True)


# In JAX the standard step always offers grad_fn; said here for clarity, as in torch.py.
step_kind = "closure"

# The schedule ends at the step hint: the trial ends there too (a zero learning rate gains nothing).
training_steps = until_step_hint
