"""Zeroth-order momentum SGD (ZO-SGD with DeepZero's randomized gradient estimate, Chen et al.,
ICLR 2024) in torch: trains with forward passes only. Written by hand in both frameworks; the
rules are the same, but torch and JAX draw different random directions, so their runs differ.

Each step estimates the gradient from q+1 evaluations of this batch's loss (the randomized
gradient estimate, RGE, of ZO-SGD and DeepZero), over all parameters jointly:

    g_hat = (1/q) sum_i [(L(theta + mu u_i) - L(theta)) / mu] u_i,   u_i ~ N(0, I),

an unbiased estimate of the gradient of the Gaussian-smoothed loss E_u L(theta + mu u), then
takes a momentum-SGD step theta <- theta - lr (m <- momentum m + g_hat) with the harness's warmup +
cosine schedule. No backward pass runs and no parameter ever holds a .grad (`step_kind =
"forward_only"`: the harness hands `step` a closure that evaluates the loss under no_grad).

DeepZero itself prefers the coordinate-wise estimate (CGE: one finite difference per parameter,
d+1 forwards a step); our models have 10^4-10^5 parameters, so RGE with a few directions is the
only affordable choice here. Left out is what makes DeepZero scale: sparsity (layer-wise ratios
from ZO-GraSP, a forward-only pruning at init; CGE on a sparse random mask's coordinates only)
and feature reuse (re-running only the layers after a perturbed one). See README.md.
"""

import numpy as np
import torch

from algoperf.frameworks.torch import until_step_hint, warmup_cosine

step_kind = "forward_only"


class ZerothOrderSGD(torch.optim.Optimizer):
    """Momentum SGD on the randomized gradient estimate; `step(closure)` needs the closure."""

    def __init__(self, params, lr, momentum, mu, q, seed):
        super().__init__(params, {"lr": lr, "momentum": momentum})
        self.mu, self.q = float(mu), int(q)
        first = self.param_groups[0]["params"][0]
        self.generator = torch.Generator(device=first.device).manual_seed(int(seed))
        self.last_estimate_norm = torch.zeros(())
        self.last_derivative_rms = torch.zeros(())

    @torch.no_grad()
    def step(self, closure):
        if closure is None:
            raise ValueError("ZerothOrderSGD.step needs the closure that evaluates the loss")
        params = [p for group in self.param_groups for p in group["params"]]
        # A copy to restore from: adding and subtracting mu * u would leave rounding errors.
        saved = [p.clone() for p in params]
        loss = closure()
        estimates = [torch.zeros_like(p) for p in params]
        derivatives = []
        for _ in range(self.q):
            directions = [
                torch.randn(p.shape, generator=self.generator, device=p.device, dtype=p.dtype) for p in params
            ]
            torch._foreach_add_(params, directions, alpha=self.mu)
            derivative = (closure() - loss) / self.mu
            torch._foreach_copy_(params, saved)
            torch._foreach_add_(estimates, torch._foreach_mul(directions, derivative / self.q))
            derivatives.append(derivative)
        index = 0
        for group in self.param_groups:
            for p in group["params"]:
                buffer = self.state[p].get("momentum_buffer")
                if buffer is None:
                    buffer = self.state[p]["momentum_buffer"] = torch.zeros_like(p)
                buffer.mul_(group["momentum"]).add_(estimates[index])
                p.add_(buffer, alpha=-group["lr"])
                index += 1
        self.last_estimate_norm = torch.linalg.vector_norm(torch.stack(torch._foreach_norm(estimates)))
        # For Gaussian u, E[(u . grad)^2] = |grad|^2: the RMS directional derivative estimates
        # the true gradient norm, while |g_hat| is about sqrt(d / q) times larger (its noise).
        self.last_derivative_rms = torch.stack(derivatives).square().mean().sqrt()
        return loss


def make_optimizer(params, hparams, workload):
    # make_optimizer gets no rng; numpy's global generator is seeded per trial by the harness.
    seed = np.random.randint(2**31)
    optimizer = ZerothOrderSGD(
        params,
        lr=hparams.learning_rate,
        momentum=hparams.momentum,
        mu=hparams.mu,
        q=int(hparams.q),
        seed=seed,
    )
    warmup_steps = int(hparams.warmup_fraction * workload.step_hint)
    return optimizer, warmup_cosine(optimizer, warmup_steps, workload.step_hint)


def diagnostics(optimizer):
    """|g_hat| of the last step, and the RMS of its finite differences (which estimates |grad L|)."""
    return {
        "estimate_norm": float(optimizer.last_estimate_norm),
        "directional_derivative_rms": float(optimizer.last_derivative_rms),
    }


training_steps = until_step_hint
