"""The JAX side of the harness (algoperf/frameworks/jax.py): schedule parity with torch, no
recompilation across steps, the plugin adapter's step, rng/sync/threads, the JaxWorkload base.

A tiny synthetic regression workload (an MLP) keeps the compiled functions small; they are
compiled once per module and shared by the tests.
"""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
import warnings
from types import SimpleNamespace

import numpy as np
import pytest

jax = pytest.importorskip("jax")
optax = pytest.importorskip("optax")
torch = pytest.importorskip("torch")
import flax.linen as nn  # noqa: E402
import jax.numpy as jnp  # noqa: E402

from algoperf.frameworks import load_backend  # noqa: E402
from algoperf.frameworks.jax import (  # noqa: E402
    JaxWorkload,
    compile_count,
    flatten_params,
    param_shapes,
    unflatten_params,
    warmup_cosine,
)
from algoperf.frameworks.torch import warmup_cosine as torch_warmup_cosine  # noqa: E402
from algoperf.plugins import find_submission, load_submission  # noqa: E402
from algoperf.spec import ForwardPassMode, Hyperparameters, LossType, ParamType  # noqa: E402
from algoperf.tuning import SearchSpace  # noqa: E402
from algoperf.workload import DataSplits, WorkloadSize  # noqa: E402

fw = load_backend("jax")

WARMUP_STEPS = 1  # the first step compiles; none after it may
MEASURED_STEPS = 30


class Mlp(nn.Module):
    hidden: int

    @nn.compact
    def __call__(self, x, train: bool = False):
        x = nn.LayerNorm(name="norm")(x)
        x = jax.nn.relu(nn.Dense(self.hidden, name="hidden")(x))
        return nn.Dense(1, name="out")(x)


class ToyJaxWorkload(JaxWorkload):
    name = "toy_jax"
    metric_name = "mse"
    metric_higher_is_better = False
    loss_type = LossType.MEAN_SQUARED_ERROR
    default_batch_size = 32
    eval_batch_size = 100  # validation has 250 examples: the last batch is padded
    sizes = {"small": WorkloadSize(target=0.05, step_hint=200, options={"hidden": 16})}

    def load_splits(self) -> DataSplits:
        rng = np.random.default_rng(0)
        weights = rng.normal(size=(8, 1)).astype(np.float32)

        def make(n):
            x = rng.normal(size=(n, 8)).astype(np.float32)
            return {"inputs": x, "targets": (x @ weights).astype(np.float32)}

        self._num_train_examples = 1024
        return DataSplits(train=make(1024), validation=make(250), test=make(250))

    def build_model(self):
        return Mlp(self.options["hidden"])

    def init_inputs(self):
        return jnp.zeros((1, 8), jnp.float32)


def run_steps(submission, workload, params, model_state, state, queue, hparams, first, count):
    losses = []
    for step in range(first, first + count):
        batch = submission.data_selection(
            workload=workload,
            input_queue=queue,
            optimizer_state=state,
            current_param_container=params,
            model_state=model_state,
            hyperparameters=hparams,
            global_step=step,
            rng=fw.step_rng(7, 2 * step),
        )
        state, params, model_state = submission.update_params(
            workload=workload,
            current_param_container=params,
            current_params_types=workload.param_types,
            model_state=model_state,
            hyperparameters=hparams,
            batch=batch,
            loss_type=workload.loss_type,
            optimizer_state=state,
            eval_results=[],
            global_step=step,
            rng=fw.step_rng(7, 2 * step + 1),
        )
        fw.sync(params, state)
        losses.append(fw.to_float(state["last_loss"]))
    return state, params, model_state, losses


@pytest.fixture(scope="module")
def toy():
    workload = ToyJaxWorkload()
    splits = workload.load_splits()
    train = workload.to_device(splits.train)
    validation = workload.to_device(splits.validation)
    params, model_state = workload.init_model_fn(0)
    return SimpleNamespace(
        workload=workload,
        splits=splits,
        train=train,
        validation=validation,
        params=params,
        model_state=model_state,
    )


@pytest.fixture(scope="module")
def adamw_run(toy):
    """The real adamw plugin on the toy workload: warm-up, then measured steps and evals."""
    source = find_submission("adamw")
    submission = load_submission(source, "jax")
    hparams = Hyperparameters(
        {**SearchSpace.from_yaml(source.search_space_path).defaults(), "learning_rate": 3e-2}
    )
    workload = toy.workload
    params = jax.tree.map(jnp.copy, toy.params)  # the step donates its input buffers
    state = submission.init_optimizer_state(
        workload=workload,
        model_params=params,
        model_state=toy.model_state,
        hyperparameters=hparams,
        rng=fw.step_rng(7, -1),
    )
    queue = workload.train_batches(toy.train, workload.default_batch_size, seed=3)
    args = (submission, workload)
    state, params, model_state, warm = run_steps(
        *args, params, toy.model_state, state, queue, hparams, 0, WARMUP_STEPS
    )
    initial_eval = workload.eval_metrics(params, model_state, toy.validation)
    compiles_after_warmup = compile_count()
    state, params, model_state, measured = run_steps(
        *args, params, model_state, state, queue, hparams, WARMUP_STEPS, MEASURED_STEPS
    )
    final_eval = workload.eval_metrics(params, model_state, toy.validation)
    return SimpleNamespace(
        losses=warm + measured,
        compiles_during_measure=compile_count() - compiles_after_warmup,
        initial_eval=initial_eval,
        final_eval=final_eval,
        params=params,
        state=state,
    )


# ---- schedule -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "warmup_steps, total_steps, final_lr_factor",
    [(5, 40, 0.0), (0, 30, 0.0), (10, 10, 0.0), (8, 50, 0.1), (1, 2, 0.5)],
)
def test_warmup_cosine_matches_torch_at_every_step(warmup_steps, total_steps, final_lr_factor):
    peak_lr = 3e-3
    parameter = torch.nn.Parameter(torch.zeros(1))
    optimizer = torch.optim.SGD([parameter], lr=peak_lr)
    scheduler = torch_warmup_cosine(optimizer, warmup_steps, total_steps, final_lr_factor)
    torch_lrs = []
    for _ in range(total_steps + 11):  # the lr each optimizer step uses, 0..total+10
        torch_lrs.append(optimizer.param_groups[0]["lr"])
        optimizer.step()
        scheduler.step()
    schedule = warmup_cosine(peak_lr, warmup_steps, total_steps, final_lr_factor)
    jax_lrs = [float(schedule(step)) for step in range(total_steps + 11)]
    assert torch_lrs[0] == jax_lrs[0] == 0.0
    # optax computes in float32: agree to float32 rounding of the peak.
    np.testing.assert_allclose(jax_lrs, torch_lrs, rtol=1e-6, atol=1e-6 * peak_lr)
    assert jax_lrs[-1] == pytest.approx(final_lr_factor * peak_lr, rel=1e-6, abs=1e-12)


def test_optax_applies_the_schedule_from_count_zero():
    """The first update uses schedule(0), as torch's LambdaLR does: step k uses factor(k)."""
    tx = optax.sgd(warmup_cosine(1.0, 4, 10))
    params = {"w": jnp.zeros(())}
    state = tx.init(params)
    used = []
    for _ in range(6):
        updates, state = tx.update({"w": jnp.ones(())}, state, params)
        used.append(-float(updates["w"]))
    np.testing.assert_allclose(used[:5], [0.0, 0.25, 0.5, 0.75, 1.0], atol=1e-7)


# ---- the plugin adapter's step --------------------------------------------------------------


def test_no_recompilation_after_warmup_in_steps_or_eval(adamw_run):
    assert adamw_run.compiles_during_measure == 0


def test_compile_accounting_sees_a_new_compilation():
    before_count, before_s = compile_count(), fw.compile_time_s()
    jax.jit(lambda x: jnp.sin(x) * 3.0 + 0.123)(np.ones((3, 7), np.float32)).block_until_ready()
    assert compile_count() == before_count + 1
    assert fw.compile_time_s() > before_s


def test_adapter_step_decreases_loss_and_validation_loss(adamw_run):
    losses = adamw_run.losses
    assert len(losses) == WARMUP_STEPS + MEASURED_STEPS
    assert np.isfinite(losses).all()
    assert np.mean(losses[-5:]) < 0.5 * np.mean(losses[:3]), losses
    assert adamw_run.final_eval["loss"] < adamw_run.initial_eval["loss"]


def test_optimizer_state_is_a_dict_with_a_device_scalar_loss(adamw_run):
    state = adamw_run.state
    assert {"opt_state", "last_loss"} <= set(state)
    assert isinstance(state["last_loss"], jax.Array) and state["last_loss"].shape == ()


def test_grad_clip_norm_hparam_clips_the_global_gradient_norm(toy):
    """With grad_clip_norm, an SGD(lr=1) step moves the parameters by at most the clip norm."""
    plugin = SimpleNamespace(make_optimizer=lambda hparams, workload: optax.sgd(1.0))
    api = fw.plugin_to_full(plugin)
    workload = toy.workload
    batch = next(workload.train_batches(toy.train, 32, seed=0))
    moved = {}
    for clip in (None, 1e-3):
        hparams = Hyperparameters({"grad_clip_norm": clip} if clip else {})
        params = jax.tree.map(jnp.copy, toy.params)
        before = jax.tree.map(np.asarray, params)
        state = api["init_optimizer_state"](workload, params, toy.model_state, hparams, None)
        _, params, _ = api["update_params"](
            workload,
            params,
            workload.param_types,
            toy.model_state,
            hparams,
            batch,
            workload.loss_type,
            state,
            [],
            0,
            fw.step_rng(0, 0),
        )
        moved[clip] = float(optax.tree.norm(jax.tree.map(lambda a, b: a - b, params, before)))
    assert moved[None] > 1e-2
    assert moved[1e-3] == pytest.approx(1e-3, rel=1e-3)


def test_make_optimizer_must_return_a_gradient_transformation(toy):
    api = fw.plugin_to_full(SimpleNamespace(make_optimizer=lambda hparams, workload: "adam"))
    with pytest.raises(TypeError, match="optax.GradientTransformation"):
        api["init_optimizer_state"](toy.workload, toy.params, {}, Hyperparameters({}), None)


# ---- rng, sync, floats, threads -------------------------------------------------------------


def test_step_rng_is_a_deterministic_key_and_cheap():
    key = fw.step_rng(11, 5)
    assert jax.dtypes.issubdtype(key.dtype, jax.dtypes.prng_key)
    expected = jax.random.fold_in(jax.random.key(11), 5)
    assert (jax.random.key_data(key) == jax.random.key_data(expected)).all()
    assert (jax.random.key_data(fw.step_rng(11, 5)) == jax.random.key_data(key)).all()
    assert (jax.random.key_data(fw.step_rng(11, 6)) != jax.random.key_data(key)).any()
    assert (jax.random.key_data(fw.step_rng(12, 5)) != jax.random.key_data(key)).any()
    fw.step_rng(11, -1)  # the runner's init call
    before = compile_count()
    for step in range(50):
        fw.step_rng(11, step)
        fw.step_rng(13, step)
    assert compile_count() == before


def test_sync_waits_on_trees_with_non_array_leaves():
    tree = {"x": jnp.ones(3) * 2, "fn": len, "none": None, "n": 3}
    fw.sync(tree, [jnp.zeros(2)])
    assert fw.to_float(jnp.float32(1.5)) == 1.5
    assert fw.is_finite(jnp.ones(3)) and not fw.is_finite(jnp.array([1.0, jnp.nan]))


def test_set_threads_after_backend_start_warns_only_when_it_would_change():
    jnp.ones(1).block_until_ready()  # the backend is running
    current = os.environ.get("PJRT_NPROC")
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        if current:
            fw.set_threads(int(current))
    with pytest.warns(UserWarning, match="PJRT_NPROC"):
        fw.set_threads(int(current or 1) + 7)
    assert os.environ.get("PJRT_NPROC") == current


def test_set_threads_limits_xla_to_one_compute_thread():
    """In a fresh process, set_threads(1) before the first computation leaves one thread busy."""
    script = textwrap.dedent(
        """
        import os
        from algoperf.frameworks import load_backend
        load_backend("jax").set_threads(1)
        import jax, jax.numpy as jnp

        def ticks():
            out = {}
            for tid in os.listdir("/proc/self/task"):
                with open(f"/proc/self/task/{tid}/stat") as f:
                    fields = f.read().rsplit(")", 1)[1].split()
                out[tid] = int(fields[11]) + int(fields[12])
            return out

        f = jax.jit(lambda a: (a @ a).sum())
        a = jnp.ones((1024, 1024))
        f(a).block_until_ready()
        before = ticks()
        for _ in range(15):
            f(a).block_until_ready()
        after = ticks()
        busy = sorted((after[t] - before.get(t, 0) for t in after), reverse=True)
        print(os.environ["PJRT_NPROC"], busy[0], sum(busy))
        """
    )
    env = {k: v for k, v in os.environ.items() if k != "PJRT_NPROC"}
    out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, env=env, timeout=120)
    assert out.returncode == 0, out.stderr
    nproc, busiest, total = out.stdout.split()
    assert nproc == "1"
    assert int(busiest) >= 0.9 * int(total)


# ---- the JaxWorkload base -------------------------------------------------------------------


def test_param_names_types_and_order(toy):
    workload = toy.workload
    assert list(workload.param_types) == [
        "norm.weight",
        "norm.bias",
        "hidden.weight",
        "hidden.bias",
        "out.weight",
        "out.bias",
    ]
    assert workload.param_types["norm.weight"] is ParamType.NORM_SCALE
    assert workload.param_types["norm.bias"] is ParamType.NORM_BIAS
    assert workload.param_types["hidden.weight"] is ParamType.WEIGHT
    assert workload.param_types["out.bias"] is ParamType.BIAS
    assert workload.param_shapes["hidden.weight"] == (8, 16)
    assert param_shapes(toy.params) == {n: tuple(s) for n, s in workload.param_shapes.items()}


def test_unflatten_inverts_flatten_and_gives_optax_masks(toy):
    flat = flatten_params(toy.params)
    again = unflatten_params(flat, toy.params)
    assert jax.tree.structure(again) == jax.tree.structure(toy.params)
    for a, b in zip(jax.tree.leaves(again), jax.tree.leaves(toy.params), strict=True):
        assert a is b
    types = unflatten_params(toy.workload.param_types, toy.params)
    assert types["hidden"]["kernel"] is ParamType.WEIGHT
    assert types["norm"]["scale"] is ParamType.NORM_SCALE


def test_train_batches_are_seeded_permutations(toy):
    def first_epoch(seed):
        stream = toy.workload.train_batches(toy.train, 256, seed)
        return np.concatenate([np.asarray(next(stream)["inputs"]) for _ in range(4)])

    a, b, c = first_epoch(0), first_epoch(0), first_epoch(1)
    np.testing.assert_array_equal(a, b)
    assert not np.array_equal(a, c)
    # One epoch visits every example once.
    seen = {row.tobytes() for row in a}
    assert seen == {row.tobytes() for row in toy.splits.train["inputs"]}


def test_eval_metrics_pads_the_last_batch_without_counting_it(toy):
    outputs, _ = toy.workload.model_fn(
        toy.params, toy.validation, toy.model_state, ForwardPassMode.EVAL, None, False
    )
    expected = float(jnp.mean(jnp.square(outputs - toy.validation["targets"])))
    metrics = toy.workload.eval_metrics(toy.params, toy.model_state, toy.validation)
    assert metrics["mse"] == pytest.approx(expected, rel=1e-5)
    assert metrics["loss"] == pytest.approx(expected, rel=1e-5)


def test_loss_fn_masks_and_label_smoothing():
    class Classifier(ToyJaxWorkload):
        loss_type = LossType.SOFTMAX_CROSS_ENTROPY

    workload = Classifier()
    logits = jnp.asarray(np.random.default_rng(0).normal(size=(6, 4)).astype(np.float32))
    targets = jnp.asarray([0, 1, 2, 3, 0, 1])
    mask = jnp.asarray([1, 1, 0, 1, 0, 1], jnp.float32)
    plain = workload.loss_fn(targets, logits)
    masked = workload.loss_fn(targets, logits, mask)
    smoothed = workload.loss_fn(targets, logits, None, 0.1)
    log_probs = jax.nn.log_softmax(logits)
    per_example = -log_probs[jnp.arange(6), targets]
    np.testing.assert_allclose(plain["per_example"], per_example, rtol=1e-6)
    assert plain["n_valid_examples"] == 6
    assert float(masked["n_valid_examples"]) == 4
    expected_masked = float((per_example * mask).sum())
    np.testing.assert_allclose(float(masked["summed"]), expected_masked, rtol=1e-6)
    expected = (0.9 * per_example - 0.1 / 4 * log_probs.sum(-1)).sum()
    np.testing.assert_allclose(float(smoothed["summed"]), float(expected), rtol=1e-6)
    torch_loss = torch.nn.functional.cross_entropy(
        torch.tensor(np.asarray(logits)),
        torch.tensor(np.asarray(targets), dtype=torch.long),
        reduction="sum",
        label_smoothing=0.1,
    )
    np.testing.assert_allclose(float(smoothed["summed"]), float(torch_loss), rtol=1e-5)


# ---- a real trial through the runner ----------------------------------------------------------


@pytest.mark.slow
def test_fashion_mnist_trial_runs_in_jax(tmp_path):
    from algoperf.config import compose
    from algoperf.runner import run_trial
    from algoperf.schema import RunConfig

    hardware = compose(["workload=fashion_mnist", "submission=adamw"]).hardware
    cfg = RunConfig(
        workload="fashion_mnist",
        submission="adamw",
        framework="jax",
        hardware=hardware,
        results_dir=str(tmp_path),
        max_steps=4,
        eval_every_steps=2,
        threads=1,
    )
    record = run_trial(cfg, progress=False)
    assert record["status"] == "budget_exhausted", record["error"]
    assert record["global_steps"] == 4 and record["num_evals"] == 2
    assert record["compile_time_s"] > 0
    assert record["software"]["jax"] == jax.__version__
