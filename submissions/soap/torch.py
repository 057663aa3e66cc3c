"""SOAP (Vyas et al. 2024, "SOAP: Improving and Stabilizing Shampoo using Adam"): Adam run in the
eigenbasis of Shampoo's preconditioner, from pytorch-optimizer (`SOAP`), with linear warmup + cosine
decay to the workload's step hint. PyTorch only: no maintained JAX library has SOAP (optax does not).

Per tensor: 1-D parameters (biases, norm scales) are plain Adam (precondition_1d=False, as the
reference implementation). Every other axis of size <= max_precondition_dim gets its own Shampoo
factor, an exponential average (shampoo_beta = beta2) of the gradient's outer products along that
axis, whose eigenbasis rotates the gradient before the Adam step; a larger axis is left unrotated.
Conv weights, (out, in, kh, kw) in torch (channels_first), thus get four factors: out x out,
in x in and two 3 x 3. merge_dims=False: merging axes would give one (in * kh * kw) factor, but
this library's merge crashes on any tensor with at most max_precondition_dim elements (it reshapes
to [1]), which here is most of them. Each axis is at most 256 long on the three CPU workloads, so
every matrix axis is rotated; the eigenbases are refreshed (one QR power step) every
precondition_frequency steps, the cost measured in search_space.yaml.
"""

from pytorch_optimizer import SOAP

from algoperf.frameworks.torch import until_step_hint, warmup_cosine


def make_optimizer(params, hparams, workload):
    optimizer = SOAP(
        params,
        lr=hparams.learning_rate,
        betas=(1.0 - hparams.one_minus_beta1, hparams.beta2),
        shampoo_beta=None,  # beta2
        weight_decay=hparams.weight_decay,  # decoupled: p *= 1 - lr * wd after the step
        precondition_frequency=hparams.precondition_frequency,
        max_precondition_dim=10000,  # the reference's: no axis of these workloads comes near it
        merge_dims=False,
        precondition_1d=False,
        correct_bias=True,
        normalize_gradient=False,
        data_format="channels_first",  # torch's conv layout; only read when merging axes
        eps=1e-8,
    )
    warmup_steps = int(hparams.warmup_fraction * workload.step_hint)
    return optimizer, warmup_cosine(optimizer, warmup_steps, workload.step_hint)


# The schedule ends at the step hint: the trial ends there too (a zero learning rate gains nothing).
training_steps = until_step_hint
