"""Muon by parameter role (Jordan et al. 2024): Muon for the hidden layers' weight matrices (conv
kernels through their (out, in*kh*kw) view), NAdamW for the rest (embeddings, input layers, the
head, norms, biases), each under its own warmup + cosine schedule. `Muon` below is optax's
`scale_by_muon` rule written for torch; jax.py uses `optax.contrib.muon`. The same rule (tested).

Why not torch.optim.Muon: it takes 2-D tensors only, does not bias-correct the momentum, scales
by max(1, rows/cols)**0.5 only with adjust_lr_fn="original" and orthogonalises in bfloat16 in
some versions. optax.contrib.muon's rule, per Muon matrix W (G its (fan_out, fan_in) gradient):

    m <- beta m + (1 - beta) G
    M = beta m / (1 - beta^(t+1)) + (1 - beta) G / (1 - beta^t)       (bias-corrected Nesterov)
    O = NewtonSchulz5(M / (|M|_F + eps))                              (quintic, 5 steps)
    W <- W - lr_t (sqrt(max(1, fan_out / fan_in)) O + wd W)

and its Adam side is `optax.adamw(..., nesterov=True)`: NAdamW, i.e. torch's NAdam with
decoupled decay and no momentum warmup (as submissions/nadamw), with beta1 = Muon's beta and
the same eps and weight decay (optax's adam_weight_decay set to it).
"""

import math

import torch

from algoperf.frameworks.torch import until_step_hint, warmup_cosine
from algoperf.spec import ParamRole

NS_COEFFS = (3.4445, -4.7750, 2.0315)  # optax's default (Jordan's quintic)
NS_STEPS = 5
EPS = 1e-8  # optax.contrib.muon's eps: the Frobenius normalisation and Adam's denominator


def is_muon_param(info) -> bool:
    return info.is_matrix and info.role is ParamRole.HIDDEN


def newton_schulz(x: torch.Tensor) -> torch.Tensor:
    """optax's orthogonalize_via_newton_schulz ('frobenius' preconditioning) of one matrix."""
    transposed = x.shape[0] > x.shape[1]  # iterate on the wide orientation: X X^T is the small Gram
    if transposed:
        x = x.T
    x = x / (torch.linalg.matrix_norm(x) + EPS)
    a, b, c = NS_COEFFS
    for _ in range(NS_STEPS):
        gram = x @ x.T
        x = a * x + (b * gram + c * gram @ gram) @ x
    return x.T if transposed else x


class Muon(torch.optim.Optimizer):
    """optax.contrib.muon's Muon part for tensors of any rank: each parameter is orthogonalised
    as its ParamInfo matrix view (fan_out, fan_in), one parameter group per tensor (its `info`)."""

    def __init__(self, params_and_infos, lr: float, beta: float = 0.95, weight_decay: float = 0.0):
        if lr < 0 or weight_decay < 0 or not 0 <= beta < 1:
            raise ValueError(f"invalid Muon settings: lr={lr} beta={beta} wd={weight_decay}")
        groups = [{"params": [p], "info": info} for p, info in params_and_infos]
        super().__init__(groups, {"lr": lr, "beta": beta, "weight_decay": weight_decay})

    @torch.no_grad()
    def step(self, closure=None):
        loss = None
        if closure is not None:
            with torch.enable_grad():
                loss = closure()
        for group in self.param_groups:
            (p,), info, beta = group["params"], group["info"], group["beta"]
            if p.grad is None:
                continue
            state = self.state[p]
            if not state:
                state["step"] = 0
                state["momentum"] = torch.zeros_like(p, memory_format=torch.preserve_format)
            state["step"] += 1
            t, m, g = state["step"], state["momentum"], p.grad
            m.mul_(beta).add_(g, alpha=1.0 - beta)
            nesterov = m * (beta / (1.0 - beta ** (t + 1))) + g * ((1.0 - beta) / (1.0 - beta**t))
            # optax orthogonalises the (fan_in, fan_out) transpose of this view: the same up to a
            # transpose, which Newton-Schulz commutes with.
            orthogonal = info.from_matrix(newton_schulz(info.as_matrix(nesterov).T).T)
            scale = math.sqrt(max(1.0, info.fan_out / info.fan_in))
            update = orthogonal.mul_(scale).add_(p, alpha=group["weight_decay"])
            p.sub_(update, alpha=group["lr"])
        return loss


def make_optimizer(params, hparams, workload):
    infos = list(workload.param_info.values())  # in named_parameters order, as `params`
    beta = 1.0 - hparams.one_minus_beta1
    muon = [(p, info) for p, info in zip(params, infos, strict=True) if is_muon_param(info)]
    rest = [p for p, info in zip(params, infos, strict=True) if not is_muon_param(info)]
    warmup_steps = int(hparams.warmup_fraction * workload.step_hint)
    optimizers = []
    if muon:
        optimizers.append(Muon(muon, lr=hparams.learning_rate, beta=beta, weight_decay=hparams.weight_decay))
    if rest:
        optimizers.append(
            torch.optim.NAdam(
                rest,
                lr=hparams.adam_learning_rate,
                betas=(beta, hparams.beta2),
                eps=EPS,
                weight_decay=hparams.weight_decay,
                decoupled_weight_decay=True,
                momentum_decay=math.inf,  # optax's mu_t = b1 at every step (see submissions/nadamw)
            )
        )
    schedulers = [warmup_cosine(o, warmup_steps, workload.step_hint) for o in optimizers]
    return optimizers, schedulers


def _rms(tensors) -> float:
    tensors = list(tensors)
    if not tensors:
        return 0.0
    squares = sum(float(t.square().sum()) for t in tensors)
    return math.sqrt(squares / sum(t.numel() for t in tensors))


def diagnostics(optimizer):
    """RMS of the Muon momentum over all Muon matrices (how large the hidden layers' smoothed
    gradients are; Muon's update itself is normalised) and of the Adam side's first moment."""
    by_kind = {type(o).__name__: o for o in optimizer}
    muon, adam = by_kind.get("Muon"), by_kind.get("NAdam")
    return {
        "muon_momentum_rms": _rms(s["momentum"] for s in muon.state.values()) if muon else 0.0,
        "adam_momentum_rms": _rms(s["exp_avg"] for s in adam.state.values()) if adam else 0.0,
    }


# The schedules end at the step hint: the trial ends there too (a zero learning rate gains nothing).
training_steps = until_step_hint
