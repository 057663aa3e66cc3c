"""The zeroth-order example (examples/zeroth_order): forward passes only, the randomized gradient
estimate as written, a descent direction in expectation, and training through the harness's own
forward-only step in both frameworks."""

from __future__ import annotations

import itertools

import numpy as np
import pytest
from parity_utils import make_workload, train_losses

from algoperf.check import check_submission
from algoperf.plugins import REPO_ROOT, find_submission, import_submission_file

torch = pytest.importorskip("torch")
jax = pytest.importorskip("jax")
jnp = jax.numpy

EXAMPLE = REPO_ROOT / "examples" / "zeroth_order"


def plugin(framework):
    return import_submission_file(find_submission(str(EXAMPLE)), framework)


@pytest.mark.slow
@pytest.mark.parametrize("framework", ["torch", "jax"])
def test_check_passes_with_two_real_steps(framework, capsys):
    ok = check_submission(str(EXAMPLE), framework, "toy", run_step=True)
    out = capsys.readouterr().out
    assert ok, out
    assert "two training steps on toy ran" in out


def tiny_problem():
    """Two parameters and a loss that is not quadratic, so a finite difference is not exact."""
    generator = torch.Generator().manual_seed(3)
    params = [
        torch.randn(3, 2, generator=generator).requires_grad_(),
        torch.randn(2, generator=generator).requires_grad_(),
    ]
    x = torch.randn(5, 2, generator=generator)

    def loss_at(weight, bias):
        return torch.tanh(x @ weight.T + bias.sum()).square().mean()

    return params, loss_at


def test_torch_step_is_the_rule_and_uses_forward_passes_only():
    params, loss_at = tiny_problem()
    initial = [p.detach().clone() for p in params]
    lr, momentum, mu, q, seed = 0.3, 0.5, 1e-2, 1, 7
    optimizer = plugin("torch").ZerothOrderSGD(params, lr=lr, momentum=momentum, mu=mu, q=q, seed=seed)
    seen = []

    @torch.no_grad()  # as the harness's forward-only closure
    def closure():
        seen.append([p.detach().clone() for p in params])
        return loss_at(*params)

    # By hand: the same generator's directions, drawn parameter by parameter.
    generator = torch.Generator().manual_seed(seed)
    theta, buffer = initial, None
    for _ in range(2):
        u = [torch.randn(p.shape, generator=generator) for p in theta]
        loss = loss_at(*theta)
        derivative = (loss_at(*[t + mu * d for t, d in zip(theta, u, strict=True)]) - loss) / mu
        estimate = [derivative * d for d in u]
        buffer = (
            estimate if buffer is None else [momentum * b + g for b, g in zip(buffer, estimate, strict=True)]
        )
        expected_theta = [t - lr * b for t, b in zip(theta, buffer, strict=True)]

        seen.clear()
        returned = optimizer.step(closure)
        assert len(seen) == q + 1  # L(theta), then one perturbed forward per direction
        for before, now in zip(seen[0], theta, strict=True):
            assert torch.equal(before, now)  # the first closure sees the unperturbed parameters
        assert torch.equal(returned, loss)  # step returns L(theta)
        for p, e in zip(params, expected_theta, strict=True):
            torch.testing.assert_close(p.detach(), e, rtol=1e-6, atol=1e-7)
        theta = [p.detach().clone() for p in params]

    assert all(p.grad is None for p in params)  # no backward ever ran


def test_torch_parameters_are_restored_exactly():
    """With a zero learning rate the step must leave every parameter bit for bit as it was
    (a restore by subtracting mu * u would not)."""
    params, loss_at = tiny_problem()
    initial = [p.detach().clone() for p in params]
    optimizer = plugin("torch").ZerothOrderSGD(params, lr=0.0, momentum=0.9, mu=0.37, q=3, seed=0)
    for _ in range(3):
        optimizer.step(torch.no_grad()(lambda: loss_at(*params)))
    for p, before in zip(params, initial, strict=True):
        assert torch.equal(p.detach(), before)
    assert all(p.grad is None for p in params)


def quadratic(d=12, seed=0):
    rng = np.random.default_rng(seed)
    m = rng.normal(size=(d, d))
    a = (m @ m.T / d + np.eye(d)).astype(np.float32)
    b = rng.normal(size=d).astype(np.float32)
    theta = rng.normal(size=d).astype(np.float32)
    return a, b, theta, a @ theta - b  # the last: the true gradient at theta


def assert_descent_in_expectation(estimates, gradient):
    estimates = np.asarray(estimates, np.float64)
    assert np.mean(estimates @ gradient) > 0
    mean = estimates.mean(axis=0)
    cosine = mean @ gradient / (np.linalg.norm(mean) * np.linalg.norm(gradient))
    assert cosine > 0.9, cosine


def test_torch_estimate_is_a_descent_direction_in_expectation():
    a, b, theta, gradient = quadratic()
    a_t, b_t = torch.from_numpy(a), torch.from_numpy(b)
    param = torch.tensor(theta, requires_grad=True)
    # lr 0 keeps theta fixed; momentum 0 leaves this step's estimate in the momentum buffer.
    optimizer = plugin("torch").ZerothOrderSGD([param], lr=0.0, momentum=0.0, mu=1e-2, q=1, seed=0)

    @torch.no_grad()
    def closure():
        return 0.5 * param @ a_t @ param - b_t @ param

    estimates = []
    for _ in range(1000):
        optimizer.step(closure)
        estimates.append(optimizer.state[param]["momentum_buffer"].numpy().copy())
    assert_descent_in_expectation(estimates, gradient)
    assert param.grad is None


def test_jax_estimate_is_a_descent_direction_in_expectation():
    a, b, theta, gradient = quadratic()
    params = {"w": jnp.asarray(theta)}
    # A unit learning rate and no momentum: the update is minus this step's estimate.
    tx = plugin("jax").zeroth_order_sgd(lambda count: 1.0, momentum=0.0, mu=1e-2, q=1, seed=0)

    def value_fn(p):
        return 0.5 * p["w"] @ a @ p["w"] - b @ p["w"]

    @jax.jit
    def estimates(state):
        def one(state, _):
            updates, state = tx.update(
                jax.tree.map(jnp.zeros_like, params),
                state,
                params,
                value_fn=value_fn,
                value=value_fn(params),
            )
            return state, -updates["w"]

        return jax.lax.scan(one, state, length=1000)[1]

    assert_descent_in_expectation(np.asarray(estimates(tx.init(params))), gradient)


def hparams(**changes):
    return {"learning_rate": 3e-3, "mu": 1e-3, "q": 4, "momentum": 0.9, "warmup_fraction": 0.0, **changes}


@pytest.mark.parametrize("framework", ["torch", "jax"])
def test_the_harness_step_trains(framework):
    """40 forward-only steps of the toy regression through the harness's standard step."""
    workload = make_workload("toy", framework)
    splits = workload.load_splits()
    params, model_state = workload.init_model_fn(0)
    stream = workload.train_batches(workload.to_device(splits.train), 32, 0)
    batches = [{k: np.asarray(v) for k, v in batch.items()} for batch in itertools.islice(stream, 40)]
    np.random.seed(0)  # where make_optimizer draws its seed, as the harness seeds it per trial
    losses = np.array(
        train_losses(framework, workload, params, model_state, plugin(framework), batches, hparams())
    )
    assert np.all(np.isfinite(losses))
    assert losses[-10:].mean() < 0.5 * losses[:5].mean(), losses
