"""Kronecker-factored preconditioning from rank-1 factors (after MKOR, Mozaffari et al. 2023),
in torch: forward hooks on the model's dense layers collect what the factors need.

For a dense layer y = W x (W: fan_out x fan_in) the curvature is approximated by the Kronecker
product of an input factor A ~ E[x x^T] and an output-gradient factor G ~ E[g g^T],
g = dL/dy. MKOR's idea is to build both from rank-1 updates of batch-mean vectors,

    A <- gamma * A + (1 - gamma) * a a^T,  a = mean of the layer's inputs over the batch
    G <- gamma * G + (1 - gamma) * g g^T,  g = sum over the batch of dL/dy (the batch-mean
                                               gradient of the per-example losses)

so a step costs O(fan_in^2 + fan_out^2) per layer, not a factorisation of a full batch. The
preconditioned gradient (G + lambda_G I)^-1 dW (A + lambda_A I)^-1, with damping lambda a fraction
of each factor's mean eigenvalue, is rescaled to the gradient's norm (MKOR's norm-based
stabiliser) and fed to SGD with momentum. MKOR updates the inverses by Sherman-Morrison at every
step; this example inverts the damped factors every `inverse_every` steps instead, because the
decayed rank-1 recursion lets directions no batch has shown grow without bound in the inverse
(as gamma^-t) unless MKOR's reset heuristics are added. Layers other than dense ones
(convolutions, norms, embeddings) and biases take the plain momentum step.

The JAX twin (jax.py) gets the same statistics from the standard step (`capture_layers`);
tests/test_examples_kronecker.py checks that both train alike on the same batches.
"""

import torch
from torch import nn

from algoperf.frameworks.torch import until_step_hint, warmup_cosine


class KroneckerRank1(torch.optim.Optimizer):
    """Momentum SGD whose dense-layer gradients are preconditioned by rank-1 Kronecker factors."""

    def __init__(self, params, layers, lr, momentum, weight_decay, gamma, damping, inverse_every):
        super().__init__(params, {"lr": lr, "momentum": momentum, "weight_decay": weight_decay})
        self.layers = layers  # {id(weight): LayerStatistics}
        self.gamma, self.damping, self.inverse_every = gamma, damping, inverse_every
        self.steps = 0

    @torch.no_grad()
    def step(self, closure=None):
        refresh = self.steps % self.inverse_every == 0
        self.steps += 1
        for group in self.param_groups:
            for p in group["params"]:
                if p.grad is None:
                    continue
                direction = p.grad
                layer = self.layers.get(id(p))
                if layer is not None:
                    direction = layer.precondition(p.grad, self.gamma, self.damping, refresh)
                buffer = self.state[p].setdefault("momentum", torch.zeros_like(p))
                buffer.mul_(group["momentum"]).add_(direction)
                p.mul_(1.0 - group["lr"] * group["weight_decay"]).add_(buffer, alpha=-group["lr"])


class LayerStatistics:
    """One dense layer's hooks and factors: inputs seen on the way forward, output gradients on
    the way back (a tensor hook on the layer's output)."""

    def __init__(self, module: nn.Linear):
        out_features, in_features = module.weight.shape
        self.A = torch.eye(in_features)
        self.G = torch.eye(out_features)
        self.A_inv, self.G_inv = torch.eye(in_features), torch.eye(out_features)
        self.a = self.g = None
        module.register_forward_hook(self.forward_hook)

    def forward_hook(self, module, inputs, output):
        if not torch.is_grad_enabled():
            return
        x = inputs[0].detach()
        self.a = x.reshape(-1, x.shape[-1]).mean(0)
        output.register_hook(self.backward_hook)

    def backward_hook(self, grad):
        self.g = grad.detach().reshape(-1, grad.shape[-1]).sum(0)

    def precondition(self, grad, gamma, damping, refresh):
        if self.a is None or self.g is None:
            return grad
        self.A.mul_(gamma).add_(torch.outer(self.a, self.a), alpha=1.0 - gamma)
        self.G.mul_(gamma).add_(torch.outer(self.g, self.g), alpha=1.0 - gamma)
        if refresh:
            self.A_inv, self.G_inv = damped_inverse(self.A, damping), damped_inverse(self.G, damping)
        direction = self.G_inv @ grad @ self.A_inv
        return direction * (grad.norm() / (direction.norm() + 1e-12))


def damped_inverse(factor, damping):
    """(F + lambda I)^-1 with lambda = damping * the mean eigenvalue of F (its trace / n)."""
    n = factor.shape[0]
    lam = damping * torch.trace(factor) / n + 1e-12
    return torch.linalg.inv(factor + lam * torch.eye(n))


def make_optimizer(params, hparams, workload, model):
    """`model` (the torch module) is what the hooks attach to; `params` is in its order."""
    weights = {id(m.weight): m for m in model.modules() if isinstance(m, nn.Linear)}
    layers = {key: LayerStatistics(module) for key, module in weights.items()}
    optimizer = KroneckerRank1(
        params,
        layers,
        lr=hparams.learning_rate,
        momentum=1.0 - hparams.one_minus_momentum,
        weight_decay=hparams.weight_decay,
        gamma=hparams.factor_decay,
        damping=hparams.damping,
        inverse_every=int(hparams.inverse_every),
    )
    warmup_steps = int(hparams.warmup_fraction * workload.step_hint)
    return optimizer, warmup_cosine(optimizer, warmup_steps, workload.step_hint)


def diagnostics(optimizer):
    """How far the preconditioner is from the identity: the largest condition number of the
    damped input factors (1 = plain momentum SGD)."""
    worst = 1.0
    for layer in optimizer.layers.values():
        eigenvalues = torch.linalg.eigvalsh(layer.A_inv)
        worst = max(worst, float(eigenvalues[-1] / eigenvalues[0]))
    return {"max_input_condition": worst}


training_steps = until_step_hint
