"""The optimizer-plugin API beyond one optimizer and a gradient: parameter roles and layouts,
several torch optimizers, closures, forward-only steps, optax's extra arguments, the dense
layers' statistics, and a plugin's own diagnostics."""

from __future__ import annotations

from types import SimpleNamespace

import numpy as np
import pytest
from conftest import fixture_submission

from algoperf.plugins import list_workloads, workload_class
from algoperf.spec import ParamRole, ParamType, checked_diagnostics

torch = pytest.importorskip("torch")
jax = pytest.importorskip("jax")
optax = pytest.importorskip("optax")
jnp = jax.numpy


# ---- roles and layouts ----------------------------------------------------------------------------
REGISTRY = ["fashion_mnist", "shakespeare", "qm9"]


@pytest.fixture(scope="module")
def initialised():
    """Each registry workload (variants too) initialised in both frameworks."""
    found = {}
    for name in list_workloads():
        if not any(name.startswith(base) for base in REGISTRY):
            continue
        pair = []
        for framework in ("torch", "jax"):
            workload = workload_class(name, framework)("small")
            params, _ = workload.init_model_fn(0)
            pair.append((workload, params))
        found[name] = pair
    assert set(REGISTRY) <= set(found)
    return found


def test_every_workload_names_its_input_and_output_layers(initialised):
    for name, ((torch_workload, _), (jax_workload, _)) in initialised.items():
        for workload in (torch_workload, jax_workload):
            roles = [info.role for info in workload.param_info.values()]
            assert ParamRole.INPUT in roles and ParamRole.OUTPUT in roles, (name, workload.framework)
            assert list(workload.param_info) == list(workload.param_types)
        torch_roles = {n: i.role for n, i in torch_workload.param_info.items()}
        assert torch_roles == {n: i.role for n, i in jax_workload.param_info.items()}, name
        # The output layer produces the outputs: its weight's fan-out is the model's output size.
        head = [i for i in torch_workload.param_info.values() if i.role is ParamRole.OUTPUT and i.is_matrix]
        assert len(head) == 1, name


def test_matrix_views_agree_across_frameworks_and_convert_layouts(initialised):
    """as_matrix is the same (fan_out, fan_in) matrix in both frameworks; from_matrix inverts
    it: together they map torch's initial weights onto the JAX layout exactly as the parity
    helpers (which know each layer kind's transpose) do."""
    from parity_utils import torch_to_jax_params

    from algoperf.frameworks.jax import flatten_params

    for name, ((torch_workload, model), (jax_workload, jax_params)) in initialised.items():
        expected = flatten_params(torch_to_jax_params(model, jax_params, jax_workload.param_types))
        for param_name, p in model.named_parameters():
            t_info, j_info = torch_workload.param_info[param_name], jax_workload.param_info[param_name]
            assert (t_info.fan_in, t_info.fan_out) == (j_info.fan_in, j_info.fan_out), param_name
            assert t_info.is_matrix == j_info.is_matrix
            value = p.detach().numpy()
            if t_info.is_matrix:
                matrix = t_info.as_matrix(value)
                assert matrix.shape == (t_info.fan_out, t_info.fan_in)
                np.testing.assert_array_equal(t_info.from_matrix(matrix), value)
                converted = j_info.from_matrix(matrix)
            else:
                converted = value.reshape(j_info.shape)
            np.testing.assert_array_equal(converted, np.asarray(expected[param_name]), err_msg=name)


def test_layouts_by_kind():
    from algoperf.spec import param_layout

    assert param_layout("torch", ParamType.CONV_WEIGHT, (16, 8, 3, 3)) == ((1, 2, 3), (0,))
    assert param_layout("jax", ParamType.CONV_WEIGHT, (3, 3, 8, 16)) == ((2, 0, 1), (3,))
    assert param_layout("torch", ParamType.WEIGHT, (10, 32)) == ((1,), (0,))
    assert param_layout("jax", ParamType.WEIGHT, (32, 10)) == ((0,), (1,))
    for framework in ("torch", "jax"):
        assert param_layout(framework, ParamType.EMBEDDING, (84, 64)) == ((0,), (1,))
        assert param_layout(framework, ParamType.BIAS, (10,)) == ((), (0,))
        assert param_layout(framework, ParamType.NORM_SCALE, (10,)) == ((), (0,))


def test_a_submission_sees_param_info_through_its_workload_view(initialised):
    from algoperf.rules import WorkloadView

    (workload, _), _ = initialised["fashion_mnist"]
    assert WorkloadView(workload).param_info is workload.param_info


# ---- the torch standard step ------------------------------------------------------------------------
def toy(framework):
    workload = workload_class("toy", framework)("small")
    params, state = workload.init_model_fn(0)
    splits = workload.load_splits()
    stream = workload.train_batches(workload.to_device(splits.train), 32, 0)
    batches = []
    for batch in (next(stream) for _ in range(6)):
        batches.append({k: np.asarray(v.cpu() if hasattr(v, "cpu") else v) for k, v in batch.items()})
    return workload, params, state, batches


def torch_losses(plugin, steps=6):
    from parity_utils import train_losses

    workload, model, _, batches = toy("torch")
    return model, train_losses("torch", workload, model, None, plugin, batches[:steps])


def test_several_torch_optimizers_and_schedulers_all_step():
    """Matrices to SGD, vectors to AdamW, each with its own scheduler."""
    made = {}

    def make_optimizer(params, hparams, workload):
        infos = list(workload.param_info.values())
        matrices = [p for p, i in zip(params, infos, strict=True) if i.is_matrix]
        vectors = [p for p, i in zip(params, infos, strict=True) if not i.is_matrix]
        optimizers = [torch.optim.SGD(matrices, lr=0.1), torch.optim.AdamW(vectors, lr=0.01)]
        schedulers = [torch.optim.lr_scheduler.StepLR(o, step_size=1, gamma=0.5) for o in optimizers]
        made.update(optimizers=optimizers, schedulers=schedulers, sizes=(len(matrices), len(vectors)))
        made["before"] = [p.detach().clone() for p in params]
        return optimizers, schedulers

    _, losses = torch_losses(SimpleNamespace(make_optimizer=make_optimizer), steps=3)
    assert made["sizes"] == (2, 2)
    assert all(np.isfinite(losses))
    trained = [p for o in made["optimizers"] for p in o.param_groups[0]["params"]]
    assert len(trained) == 4 and all(not any(torch.equal(p, b) for b in made["before"]) for p in trained)
    assert [s.last_epoch for s in made["schedulers"]] == [3, 3]
    assert made["optimizers"][1].param_groups[0]["lr"] == pytest.approx(0.01 * 0.5**3)


@pytest.mark.parametrize(
    ("split", "message"),
    [
        (lambda params: [[params[0]], params[2:]], r"left 1 parameter\(s\) out"),
        (lambda params: [params, params[:1]], "more than one optimizer"),
    ],
)
def test_torch_optimizers_must_cover_every_parameter_once(split, message):
    def make_optimizer(params, hparams, workload):
        return [torch.optim.SGD(group, lr=0.1) for group in split(params)], None

    with pytest.raises(ValueError, match=message):
        torch_losses(SimpleNamespace(make_optimizer=make_optimizer), steps=1)


def test_a_torch_plugin_must_return_optimizers():
    plugin = SimpleNamespace(make_optimizer=lambda params, hparams, workload: (["not an optimizer"], None))
    with pytest.raises(TypeError, match="torch.optim.Optimizer"):
        torch_losses(plugin, steps=1)


class CountingSGD(torch.optim.SGD):
    """SGD that records what its step receives."""

    def __init__(self, params, **kwargs):
        super().__init__(params, **kwargs)
        self.calls = []

    def step(self, closure=None):
        seen = {
            "closure": closure is not None,
            "grads": [p.grad is not None for p in self.param_groups[0]["params"]],
        }
        if closure is not None:
            seen["closure_loss"] = float(closure())
            seen["grads_after_closure"] = [p.grad is not None for p in self.param_groups[0]["params"]]
        self.calls.append(seen)
        if closure is not None and seen["grads"][0] is False:  # forward only: nothing to step on
            return torch.tensor(seen["closure_loss"])
        return super().step()


def test_closure_step_hands_the_optimizer_a_loss_and_gradient_closure():
    made = []

    def make_optimizer(params, hparams, workload):
        made.append(CountingSGD(params, lr=0.05))
        return made[0], None

    plugin = SimpleNamespace(make_optimizer=make_optimizer, step_kind="closure")
    _, losses = torch_losses(plugin, steps=3)
    calls = made[0].calls
    assert len(calls) == 3 and all(c["closure"] and all(c["grads"]) for c in calls)
    # The closure re-evaluates the same batch at the same parameters: the same loss.
    np.testing.assert_allclose([c["closure_loss"] for c in calls], losses, rtol=1e-6)


def test_forward_only_step_never_computes_a_gradient():
    made = []

    def make_optimizer(params, hparams, workload):
        made.append(CountingSGD(params, lr=0.05))
        return made[0], None

    plugin = SimpleNamespace(make_optimizer=make_optimizer, step_kind="forward_only")
    model, losses = torch_losses(plugin, steps=2)
    calls = made[0].calls
    assert all(c["closure"] and not any(c["grads"]) and not any(c["grads_after_closure"]) for c in calls)
    assert all(p.grad is None for p in model.parameters())
    np.testing.assert_allclose([c["closure_loss"] for c in calls], losses, rtol=1e-6)


def test_a_torch_plugin_may_take_the_model():
    seen = {}

    def make_optimizer(params, hparams, workload, model):
        seen["model"] = model
        return torch.optim.SGD(params, lr=0.1), None

    model, _ = torch_losses(SimpleNamespace(make_optimizer=make_optimizer), steps=1)
    assert seen["model"] is not None and isinstance(seen["model"], torch.nn.Module)


# ---- the JAX standard step --------------------------------------------------------------------------
def jax_losses(plugin, steps=4):
    from parity_utils import train_losses

    workload, params, state, batches = toy("jax")
    return train_losses("jax", workload, params, state, plugin, batches[:steps])


def jax_one_step(plugin):
    """One standard step of `plugin` on the toy workload: (optimizer_state, params, loss)."""
    from algoperf.frameworks import load_backend
    from algoperf.spec import Hyperparameters

    workload, params, state, batches = toy("jax")
    api = load_backend("jax").plugin_to_full(plugin)
    hparams = Hyperparameters({})
    opt = api["init_optimizer_state"](workload, params, state, hparams, None)
    opt, params, _ = api["update_params"](
        workload=workload,
        current_param_container=params,
        current_params_types=workload.param_types,
        model_state=state,
        hyperparameters=hparams,
        batch=workload.to_device(batches[0]),
        loss_type=workload.loss_type,
        optimizer_state=opt,
        eval_results=[],
        global_step=0,
        rng=jax.random.key(0),
    )
    return opt, params, float(opt["last_loss"])


def test_optax_extra_args_are_the_step_s_loss_and_gradient():
    """A GradientTransformationExtraArgs gets value, grad, value_fn and grad_fn by name; they
    agree with each other and with the gradient it is handed."""

    def init(params):
        return {"value": jnp.zeros([]), "value_fn": jnp.zeros([]), "grad_gap": jnp.zeros([])}

    def update(updates, state, params, *, value, grad, value_fn, grad_fn):
        gap = optax.tree.norm(jax.tree.map(lambda a, b: a - b, grad_fn(params, 0), updates))
        gap += optax.tree.norm(jax.tree.map(lambda a, b: a - b, grad, updates))
        new_state = {"value": value, "value_fn": value_fn(params), "grad_gap": gap}
        return jax.tree.map(lambda g: -0.05 * g, updates), new_state

    tx = optax.GradientTransformationExtraArgs(init, update)
    opt, _, loss = jax_one_step(SimpleNamespace(make_optimizer=lambda hparams, workload: tx))
    kept = jax.tree.map(float, opt["opt_state"])
    assert kept["value"] == pytest.approx(loss, rel=1e-6)
    assert kept["value_fn"] == pytest.approx(loss, rel=1e-6)
    assert kept["grad_gap"] < 1e-6


def test_jax_forward_only_step_hands_zeros_and_the_loss():
    def update(updates, state, params, *, value_fn):
        zero = optax.tree.norm(updates)
        return jax.tree.map(jnp.zeros_like, updates), {"zero": zero, "loss": value_fn(params)}

    tx = optax.GradientTransformationExtraArgs(
        lambda p: {"zero": jnp.zeros([]), "loss": jnp.zeros([])}, update
    )
    opt, _, loss = jax_one_step(
        SimpleNamespace(make_optimizer=lambda hparams, workload: tx, step_kind="forward_only")
    )
    assert float(opt["opt_state"]["zero"]) == 0.0
    assert float(opt["opt_state"]["loss"]) == pytest.approx(loss, rel=1e-6)


def test_layer_statistics_only_when_asked():
    """capture_layers: the dense layers' inputs and output gradients, by layer name; the
    output gradient of the last layer is d(mean loss)/d(prediction)."""
    from algoperf.frameworks.jax.plugin import accepted_extra_args

    def init(params):
        return {}

    def update(updates, state, params, **extra):
        kept = {k: v for k, v in extra.items() if k.startswith("layer")}
        return jax.tree.map(lambda g: -0.01 * g, updates), kept

    tx = optax.GradientTransformationExtraArgs(init, update)
    assert "layer_inputs" not in accepted_extra_args(tx)
    assert "layer_inputs" in accepted_extra_args(tx, capture_layers=True)
    opt, _, _ = jax_one_step(
        SimpleNamespace(make_optimizer=lambda hparams, workload: tx, capture_layers=True)
    )
    seen = jax.tree.map(np.asarray, opt["opt_state"])
    inputs, output_grads = seen["layer_inputs"], seen["layer_output_grads"]
    assert set(inputs) == set(output_grads) == {"0", "2"}
    _, _, _, batches = toy("jax")
    np.testing.assert_allclose(inputs["0"], batches[0]["inputs"], rtol=1e-6)
    assert inputs["2"].shape == (32, 16) and output_grads["2"].shape == (32, 1)
    assert output_grads["0"].shape == (32, 16) and np.abs(output_grads["0"]).sum() > 0


# ---- diagnostics ------------------------------------------------------------------------------------
def test_diagnostics_are_checked():
    assert checked_diagnostics({"d": np.float32(0.5), "norm.rms": 2}) == {"d": 0.5, "norm.rms": 2.0}
    for bad, message in [
        ([1, 2], "dict"),
        ({"1st": 1.0}, "start with a letter"),
        ({"a b": 1.0}, "letters, digits"),
        ({"x": "high"}, "not a scalar"),
        ({f"v{i}": 1.0 for i in range(40)}, "at most 32"),
    ]:
        with pytest.raises(ValueError, match=message):
            checked_diagnostics(bad)


@pytest.mark.slow
def test_diagnostics_become_evals_columns_and_a_bad_one_fails_the_trial(tmp_path, toy_profile):
    from algoperf import results
    from algoperf.runner import run_trial
    from algoperf.schema import RunConfig

    def run(submission):
        cfg = RunConfig(
            workload="toy",
            submission=fixture_submission(submission),
            framework="torch",
            hardware=toy_profile,
            results_dir=str(tmp_path),
            sweep="diag",
            max_steps=20,
        )
        return run_trial(cfg, progress=False)

    record = run("diagnostics")
    assert record["status"] != "failed", record["error"]
    loaded = results.load(tmp_path / "diag")
    assert not loaded.bad_signatures
    evals = loaded.evals
    assert {"plugin.lr", "plugin.steps"} <= set(evals.columns)
    assert evals["plugin.steps"].tolist() == [10.0, 20.0]
    bad = run("diagnostics_bad")
    assert bad["status"] == "failed" and "diagnostics value 'lr' is not a scalar number" in bad["error"]


def test_check_names_a_bad_step_kind_and_accepts_the_model_parameter():
    from algoperf.plugins import api_problems

    def make_optimizer(params, hparams, workload):
        return None

    bad = SimpleNamespace(make_optimizer=make_optimizer, step_kind="second_order")
    assert any("step_kind = 'second_order' is not one of" in p for p in api_problems(bad, "torch"))

    def with_model(params, hparams, workload, model):
        return None

    assert api_problems(SimpleNamespace(make_optimizer=with_model), "torch") == []
    assert api_problems(SimpleNamespace(make_optimizer=with_model), "jax")  # JAX has no model to give
    wrong = SimpleNamespace(make_optimizer=make_optimizer, diagnostics=lambda state, extra: {})
    assert any(p.startswith("diagnostics") for p in api_problems(wrong, "torch"))


def test_a_closure_sees_the_dropout_masks_of_the_step_it_re_evaluates():
    """torch draws dropout masks from its global generator; the closure must not draw new ones."""
    from parity_utils import train_losses

    workload, model, _, batches = toy("torch")
    made = []

    def make_optimizer(params, hparams, workload):
        made.append(CountingSGD(params, lr=0.0))
        return made[0], None

    plugin = SimpleNamespace(make_optimizer=make_optimizer, step_kind="closure")
    losses = train_losses("torch", workload, model, None, plugin, batches[:3], {"dropout_rate": 0.5})
    np.testing.assert_allclose([c["closure_loss"] for c in made[0].calls], losses, rtol=1e-6)
