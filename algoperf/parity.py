"""`algoperf check --parity`: do a plugin's torch.py and jax.py mean the same optimizer?

Both `make_optimizer`s are built for the same workload (its real parameters, types, roles
and layouts, so plugins that group parameters by `workload.param_info` work as in a trial)
and run for K steps from identical parameters (torch's initialisation, converted to the JAX
layout through ParamInfo) on an identical objective:

    L_k(theta) = sum over parameters p of  0.5 * sum(h_p * (theta_p - c_p)**2) + sum(n_kp * theta_p)

with fixed random curvatures h_p > 0, centres c_p and per-step noise n_kp. Its gradient
h_p * (theta_p - c_p) + n_kp is the same function in both frameworks, so an optimizer that
re-evaluates the loss or the gradient (a closure in torch; value_fn / grad_fn in JAX) gets
the same answers in both, and a plain one gets identical gradients at identical parameters.
After every step the parameters are compared in torch's layout.

Nothing here touches the data or the clock; a workload's model is only initialised.
"""

from __future__ import annotations

import dataclasses
import functools
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from algoperf.errors import AlgoperfError
from algoperf.spec import Hyperparameters

RTOL, ATOL = 1e-5, 1e-6


@dataclass
class StepDifference:
    step: int
    max_abs: float  # largest |torch - jax| over every parameter element
    max_rel: float  # largest |torch - jax| / (|torch| + ATOL)
    worst: str  # the parameter holding the largest relative difference
    within: bool  # every parameter within rtol RTOL, atol ATOL (numpy.allclose)


@dataclass
class ParityResult:
    submission: str
    workload: str
    steps: list[StepDifference] = field(default_factory=list)
    moved: float = 0.0  # the largest parameter change over the run: a rule that never moves agrees vacuously

    @property
    def first_disagreement(self) -> int | None:
        return next((s.step for s in self.steps if not s.within), None)

    @property
    def agrees(self) -> bool:
        return self.first_disagreement is None and self.moved > 1e-4


@dataclass
class Objective:
    """The synthetic objective's constants, in torch's layout (numpy)."""

    curvature: dict[str, np.ndarray]
    centre: dict[str, np.ndarray]
    noise: list[dict[str, np.ndarray]]

    @classmethod
    def random(cls, shapes: dict[str, tuple[int, ...]], steps: int, seed: int) -> Objective:
        rng = np.random.default_rng(seed)
        draw = lambda: {n: rng.normal(size=s).astype(np.float32) for n, s in shapes.items()}  # noqa: E731
        curvature = {n: rng.uniform(0.5, 2.0, size=s).astype(np.float32) for n, s in shapes.items()}
        return cls(curvature, draw(), [draw() for _ in range(steps)])


def update_parity(
    submission: str,
    workload: str = "fashion_mnist",
    steps: int = 10,
    hparams: dict[str, Any] | None = None,
    seed: int = 0,
    step_hint: int | None = None,
) -> ParityResult:
    """Run a plugin's torch and JAX optimizers side by side; the per-step differences.

    `step_hint` (default 2 * steps) replaces the workload's, so that schedules sized by it
    warm up and start to decay within the compared steps."""
    from algoperf.plugins import find_submission, import_submission_file
    from algoperf.tuning import load_search_space

    source = find_submission(submission)
    missing = {"torch", "jax"} - set(source.frameworks)
    if missing:
        raise AlgoperfError(
            f"--parity compares torch.py and jax.py; {source.name} has no "
            f"{' or '.join(sorted(missing))} file."
        )
    modules = {fw: import_submission_file(source, fw) for fw in ("torch", "jax")}
    if not all(hasattr(m, "make_optimizer") for m in modules.values()):
        raise AlgoperfError(
            f"--parity compares optimizer plugins (make_optimizer); {source.name} is a full submission."
        )
    values = load_search_space(source.folder).defaults()
    values.update(hparams or {})
    hyperparameters = Hyperparameters(values)
    pair = initialised_pair(workload, step_hint or 2 * steps)
    objective = Objective.random(pair.torch.param_shapes, steps, seed)
    torch_steps = _run_torch(modules["torch"], hyperparameters, pair.torch, objective)
    jax_steps = _run_jax(modules["jax"], hyperparameters, pair, objective)
    result = ParityResult(source.name, workload)
    start = torch_steps[0]
    for k, (t, j) in enumerate(zip(torch_steps[1:], jax_steps[1:], strict=True), start=1):
        result.steps.append(_difference(k, t, j))
    result.moved = max(float(np.max(np.abs(torch_steps[-1][n] - start[n]))) for n in start)
    return result


def _difference(
    step: int, torch_values: dict[str, np.ndarray], jax_values: dict[str, np.ndarray]
) -> StepDifference:
    max_abs, max_rel, worst = 0.0, 0.0, ""
    for name, t in torch_values.items():
        delta = np.abs(t.astype(np.float64) - jax_values[name].astype(np.float64))
        rel = float(np.max(delta / (np.abs(t) + ATOL))) if delta.size else 0.0
        max_abs = max(max_abs, float(np.max(delta)) if delta.size else 0.0)
        if rel >= max_rel:
            max_rel, worst = rel, name
    within = all(np.allclose(t, jax_values[n], rtol=RTOL, atol=ATOL) for n, t in torch_values.items())
    return StepDifference(step, max_abs, max_rel, worst, within)


@dataclass
class Pair:
    """A workload in both frameworks, models initialised, and torch's initial parameters."""

    torch: Any
    jax: Any
    initial: dict[str, np.ndarray]  # torch layout
    jax_params: Any  # the JAX model's own initial tree: the structure the JAX run fills


@functools.lru_cache(maxsize=4)
def initialised_pair(name: str, step_hint: int) -> Pair:
    """`_initialised_pair`, once per process (initialising the JAX model compiles)."""
    return _initialised_pair(name, step_hint)


def _initialised_pair(name: str, step_hint: int) -> Pair:
    """The workload's small size in both frameworks, models initialised (no data loaded)."""
    from algoperf.plugins import workload_class

    pair = []
    for framework in ("torch", "jax"):
        workload = workload_class(name, framework)("small")
        workload.sizes = {"small": dataclasses.replace(workload.sizes["small"], step_hint=step_hint)}
        pair.append(workload)
    torch_workload, jax_workload = pair
    model, _ = torch_workload.init_model_fn(0)
    jax_params, _ = jax_workload.init_model_fn(0)
    if list(torch_workload.param_info) != list(jax_workload.param_info):
        raise AlgoperfError(f"{name}: the torch and JAX models name their parameters differently")
    initial = {n: p.detach().numpy().copy() for n, p in model.named_parameters()}
    return Pair(torch_workload, jax_workload, initial, jax_params)


def to_jax_layout(torch_info: Any, jax_info: Any, value: np.ndarray) -> np.ndarray:
    """A torch-layout array in the JAX layout (ParamInfo's matrix view is the same in both)."""
    if torch_info.is_matrix:
        return np.ascontiguousarray(jax_info.from_matrix(torch_info.as_matrix(value)))
    return value.reshape(jax_info.shape)


def to_torch_layout(torch_info: Any, jax_info: Any, value: np.ndarray) -> np.ndarray:
    if jax_info.is_matrix:
        return np.ascontiguousarray(torch_info.from_matrix(jax_info.as_matrix(value)))
    return value.reshape(torch_info.shape)


# ---- torch -------------------------------------------------------------------------------------
def _run_torch(module: Any, hparams: Hyperparameters, workload: Any, objective: Objective) -> list[dict]:
    """Parameters (torch layout) before the first step and after each."""
    import inspect

    import torch

    from algoperf.frameworks.backend import step_kind_of
    from algoperf.frameworks.torch.plugin import checked_optimizers

    torch.manual_seed(0)
    model, _ = workload.init_model_fn(0)
    names = list(workload.param_info)
    params = dict(model.named_parameters())
    as_tensors = lambda d: {n: torch.from_numpy(v) for n, v in d.items()}  # noqa: E731
    h, c = as_tensors(objective.curvature), as_tensors(objective.centre)
    extra = {"model": model} if "model" in inspect.signature(module.make_optimizer).parameters else {}
    made = module.make_optimizer([params[n] for n in names], hparams, workload, **extra)
    kind = step_kind_of(module)
    optimizers, schedulers = checked_optimizers(made, model, kind)
    trajectory = [{n: p.detach().numpy().copy() for n, p in params.items()}]
    for noise in objective.noise:
        loss_value = _torch_loss(params, h, c, as_tensors(noise))

        def gradient(loss_value=loss_value) -> torch.Tensor:
            for optimizer in optimizers:
                optimizer.zero_grad(set_to_none=True)
            loss = loss_value()
            loss.backward()
            return loss.detach()

        if kind == "forward_only":
            optimizers[0].step(torch.no_grad()(loss_value))
        else:
            gradient()
            for optimizer in optimizers:
                if kind == "closure":
                    optimizer.step(gradient)
                else:
                    optimizer.step()
        for scheduler in schedulers:
            scheduler.step()
        trajectory.append({n: p.detach().numpy().copy() for n, p in params.items()})
    return trajectory


def _torch_loss(params: dict, h: dict, c: dict, noise: dict) -> Any:
    """The objective of one step as a torch closure over the live parameters."""
    return lambda: sum((0.5 * h[n] * (p - c[n]) ** 2).sum() + (noise[n] * p).sum() for n, p in params.items())


# ---- JAX -----------------------------------------------------------------------------------------
def _run_jax(module: Any, hparams: Hyperparameters, pair: Pair, objective: Objective) -> list[dict]:
    """Parameters (converted to torch's layout) before the first step and after each."""
    import jax
    import jax.numpy as jnp
    import optax

    from algoperf.frameworks.backend import step_kind_of
    from algoperf.frameworks.jax import flatten_params, unflatten_params
    from algoperf.frameworks.jax.plugin import LAYER_ARGS, accepted_extra_args

    workload = pair.jax
    torch_info, jax_info = pair.torch.param_info, workload.param_info
    names = list(jax_info)
    convert = lambda d: {n: jnp.asarray(to_jax_layout(torch_info[n], jax_info[n], d[n])) for n in names}  # noqa: E731
    like = pair.jax_params
    params = unflatten_params(convert(pair.initial), like)
    h, c = (
        unflatten_params(convert(objective.curvature), like),
        unflatten_params(convert(objective.centre), like),
    )
    tx = module.make_optimizer(hparams, workload)
    state = tx.init(params)
    extra_names = accepted_extra_args(tx, bool(getattr(module, "capture_layers", False)))
    kind = step_kind_of(module)
    if any(name in LAYER_ARGS for name in extra_names):
        raise AlgoperfError(
            "--parity runs no layers (its objective is a function of the parameters alone), so it "
            "cannot compare an optimizer that reads layer inputs and output gradients; compare "
            "training losses on real batches instead (tests/parity_utils.py train_losses)"
        )

    @jax.jit
    def step(params, state, noise):
        def value_fn(p):
            terms = jax.tree.map(
                lambda p_, h_, c_, n_: (0.5 * h_ * (p_ - c_) ** 2).sum() + (n_ * p_).sum(), p, h, c, noise
            )
            return sum(jax.tree.leaves(terms))

        value, grads = jax.value_and_grad(value_fn)(params)
        if kind == "forward_only":
            grads = jax.tree.map(jnp.zeros_like, grads)
        offered = {
            "value": value,
            "grad": grads,
            "value_fn": value_fn,
            "obj_fn": value_fn,
            "grad_fn": lambda p, *_: jax.grad(value_fn)(p),
        }
        updates, state = tx.update(grads, state, params, **{k: offered[k] for k in extra_names})
        return optax.apply_updates(params, updates), state

    def in_torch_layout(tree: Any) -> dict[str, np.ndarray]:
        flat = flatten_params(tree)
        return {n: to_torch_layout(torch_info[n], jax_info[n], np.asarray(flat[n])) for n in names}

    trajectory = [in_torch_layout(params)]
    for noise in objective.noise:
        params, state = step(params, state, unflatten_params(convert(noise), like))
        trajectory.append(in_torch_layout(params))
    return trajectory


def format_report(result: ParityResult) -> list[str]:
    """One line per step: the largest absolute and relative difference, and where."""
    lines = [f"{'step':>4}  {'max |torch - jax|':>18}  {'max relative':>12}  largest in"]
    for s in result.steps:
        mark = "" if s.within else "  <- differs"
        lines.append(f"{s.step:>4}  {s.max_abs:>18.3e}  {s.max_rel:>12.3e}  {s.worst}{mark}")
    return lines
