"""JAX side of the harness: the JaxWorkload base, threads, compile accounting, plugin adapter.

Mirrors `algoperf.frameworks.torch` function for function. Only this file (and workloads and
submissions written for JAX) imports jax, optax and flax.

Threads: XLA sizes its CPU thread pools when the backend starts (the first computation), from
the environment variable PJRT_NPROC; `set_threads` must therefore run before anything touches a
device. The runner calls it first thing in a trial process.
"""

from __future__ import annotations

import functools
import os
import warnings
from collections.abc import Callable, Iterator
from typing import Any

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import optax
from jax import monitoring

from algoperf.spec import Batch, ForwardPassMode, LossType, ParamType, Workload, hparam, next_batch

FRAMEWORK = "jax"

# Compile accounting. XLA's own compilation is reported under this event; tracing and lowering
# are not counted (tracing nests: an inner jit's trace is inside its caller's trace).
BACKEND_COMPILE_EVENT = "/jax/core/compile/backend_compile_duration"


class _CompileLedger:
    """Seconds and number of XLA compilations in this process, fed by a jax.monitoring listener."""

    def __init__(self) -> None:
        self.seconds = 0.0
        self.count = 0

    def __call__(self, event: str, duration_s: float, **_: Any) -> None:
        if event == BACKEND_COMPILE_EVENT:
            self.seconds += duration_s
            self.count += 1


_COMPILES = _CompileLedger()
# Registered once, when the harness imports this module (before any compilation it measures).
monitoring.register_event_duration_secs_listener(_COMPILES)


def compile_time_s() -> float:
    """Seconds XLA has spent compiling so far in this process."""
    return _COMPILES.seconds


def compile_count() -> int:
    """Number of XLA compilations so far in this process (tests use it to catch recompiles)."""
    return _COMPILES.count


def device() -> jax.Device:
    return jax.devices()[0]


def default_threads() -> int:
    return int(os.environ.get("ALGOPERF_THREADS", os.cpu_count() or 1))


def _backend_started() -> bool:
    from jax._src import xla_bridge  # private, but the only way to ask without starting it

    return xla_bridge.backends_are_initialized()


def set_threads(num_threads: int) -> None:
    """Give this process its share of the cores: XLA's CPU pools get `num_threads` threads.

    Takes effect only before the backend starts (first jax computation); afterwards it warns
    when asked for a different count. XLA_FLAGS' `intra_op_parallelism_threads` and
    `--xla_cpu_multi_thread_eigen=false` do not limit the threads of jax 0.10's CPU runtime
    (checked per thread in /proc); PJRT_NPROC does.
    """
    num_threads = max(1, int(num_threads))
    if _backend_started():
        if os.environ.get("PJRT_NPROC") != str(num_threads):
            warnings.warn(
                f"set_threads({num_threads}) came after JAX started its CPU backend, so XLA "
                f"keeps PJRT_NPROC={os.environ.get('PJRT_NPROC', 'all cores')}; set it before "
                "the first jax computation (or export PJRT_NPROC).",
                stacklevel=2,
            )
        return
    os.environ["PJRT_NPROC"] = str(num_threads)


def seed_everything(seed: int) -> None:
    """JAX has no global RNG (keys are explicit); seed numpy for host-side randomness."""
    np.random.seed(seed % (2**32))


def sync(*trees: Any) -> None:
    """Wait for queued device work before the clock is read."""
    jax.block_until_ready(trees)


@functools.lru_cache(maxsize=64)
def _root_key(seed: int) -> jax.Array:
    return jax.random.key(seed)


_fold_in = jax.jit(jax.random.fold_in)


def step_rng(seed: int, step: int) -> jax.Array:
    """The per-call PRNG key handed to a submission: fold_in(key(seed), step).

    One cached dispatch per call (the root key is cached, fold_in is compiled once);
    `step` may be negative (the runner uses -1 for init) and is taken modulo 2**32.
    """
    return _fold_in(_root_key(int(seed)), np.uint32(int(step) & 0xFFFFFFFF))


def is_finite(value: Any) -> bool:
    return bool(jnp.all(jnp.isfinite(jnp.asarray(value))))


def to_float(value: Any) -> float:
    return float(value)


# ---- parameter names: flax paths as the torch model's dotted names ---------------------------

# Flax leaf names that torch calls `weight` (nn.Dense/Conv kernel, norm scale, nn.Embed table).
TORCH_LEAF_NAMES = {"kernel": "weight", "scale": "weight", "embedding": "weight"}


def _path_keys(path: tuple[Any, ...]) -> tuple[str, ...]:
    return tuple(str(getattr(k, "key", getattr(k, "name", getattr(k, "idx", k)))) for k in path)


def _raw_paths(params: Any) -> list[tuple[tuple[str, ...], Any]]:
    """(flax path, leaf) pairs in jax's tree order."""
    return [(_path_keys(path), leaf) for path, leaf in jax.tree_util.tree_flatten_with_path(params)[0]]


def flatten_key(path: tuple[str, ...]) -> str:
    """A flax param path as its torch-style dotted name: ("head", "kernel") -> "head.weight"."""
    return ".".join([*path[:-1], TORCH_LEAF_NAMES.get(path[-1], path[-1])])


def flatten_params(params: Any) -> dict[str, Any]:
    """Flax params -> {torch-style dotted name: leaf}, in jax's tree order.

    The model's own parameter order (torch's `named_parameters()` order) is that of the
    workload's `param_types`.
    """
    flat: dict[str, Any] = {}
    for path, leaf in _raw_paths(params):
        name = flatten_key(path)
        if name in flat:
            raise ValueError(f"two flax parameters map to the torch-style name {name!r}")
        flat[name] = leaf
    return flat


def unflatten_params(flat: dict[str, Any], like: Any) -> Any:
    """The inverse of `flatten_params`: a pytree shaped like `like` with the values of `flat`.

    E.g. `unflatten_params(workload.param_types, params)` labels params for optax masks.
    """
    names = iter([flatten_key(path) for path, _ in _raw_paths(like)])
    return jax.tree.map(lambda _: flat[next(names)], like)


def param_shapes(params: Any) -> dict[str, tuple[int, ...]]:
    return {name: tuple(leaf.shape) for name, leaf in flatten_params(params).items()}


NORM_MODULES = (nn.LayerNorm, nn.GroupNorm, nn.BatchNorm, nn.RMSNorm)

# ---- torch's defaults as flax pieces, so a JAX model can start from torch's distributions ------

# torch's default for Conv/Linear weights: kaiming_uniform(a=sqrt(5)) = U(±1/sqrt(fan_in)).
TORCH_DEFAULT_KERNEL = nn.initializers.variance_scaling(1 / 3, "fan_in", "uniform")
TORCH_NORM_EPS = 1e-5  # torch's LayerNorm/GroupNorm default (flax's is 1e-6)


def torch_default_bias(fan_in: int) -> nn.initializers.Initializer:
    """torch's Linear bias default: U(±1/sqrt(fan_in))."""
    bound = 1 / fan_in**0.5

    def init(key: jax.Array, shape: tuple[int, ...], dtype: Any = jnp.float32) -> jax.Array:
        return jax.random.uniform(key, shape, dtype, -bound, bound)

    return init


def torch_layer_norm(name: str) -> nn.LayerNorm:
    """nn.LayerNorm as torch computes it (eps 1e-5, two-pass variance)."""
    return nn.LayerNorm(epsilon=TORCH_NORM_EPS, use_fast_variance=False, name=name)


def to_compute_dtype(tree: Any, dtype: Any = jnp.bfloat16) -> Any:
    """Mixed precision: floating leaves cast to `dtype` for the forward pass. The float32
    parameters stay the master copy (the cast's gradient is float32); flax norms compute their
    statistics in float32 whatever the input dtype, and the outputs are cast back to float32."""
    return jax.tree.map(lambda x: x.astype(dtype) if jnp.issubdtype(x.dtype, jnp.floating) else x, tree)


class JaxWorkload(Workload):
    """JAX implementation helpers shared by every JAX workload.

    A subclass provides `build_model()` (a flax.linen Module whose `__call__(inputs, train)`
    returns the outputs), `init_inputs()` (a dummy input batch for init) and
    `eval_batch_sums(...)`; the rest is generic.
    """

    framework = FRAMEWORK

    def __init__(self, size: str = "small", data_dir: str | None = None):
        super().__init__(size, data_dir)
        self.model: nn.Module | None = None
        self._eval_batch_sums_jit = jax.jit(self.eval_batch_sums)

    # ---- data -----------------------------------------------------------------------------
    def to_device(self, arrays: dict[str, np.ndarray]) -> dict[str, jax.Array]:
        """Device arrays in JAX's canonical dtypes (int64 -> int32 unless x64 is enabled)."""
        dev = device()
        return {
            k: jax.device_put(np.ascontiguousarray(v, dtype=jax.dtypes.canonicalize_dtype(v.dtype)), dev)
            for k, v in arrays.items()
        }

    @staticmethod
    def random_batches(train: dict[str, jax.Array], batch_size: int, seed: int) -> Iterator[Batch]:
        """Epochs of a seeded permutation, gathered on the device (drop the ragged last batch).

        One compiled gather serves every step: the start index is a traced argument.
        """
        n = len(next(iter(train.values())))
        generator = np.random.default_rng(seed)
        while True:
            order = jax.device_put(generator.permutation(n).astype(np.int32))
            for start in range(0, n - batch_size + 1, batch_size):
                yield _take_batch(train, order, np.int32(start), batch_size)

    # ---- model ----------------------------------------------------------------------------
    def build_model(self) -> nn.Module:
        raise NotImplementedError

    def init_inputs(self) -> jax.Array:
        """A dummy input batch (any batch size) that `init_model_fn` traces the model with."""
        raise NotImplementedError

    def param_type_of(self, name: str, leaf_key: str, module: type[nn.Module]) -> ParamType:
        """Default typing from the owning module class; workloads override for attention."""
        if issubclass(module, nn.Embed):
            return ParamType.EMBEDDING
        if issubclass(module, NORM_MODULES):
            return ParamType.NORM_SCALE if leaf_key == "scale" else ParamType.NORM_BIAS
        if leaf_key == "bias":
            return ParamType.BIAS
        if issubclass(module, (nn.Conv, nn.ConvTranspose)):
            return ParamType.CONV_WEIGHT
        return ParamType.WEIGHT

    def module_order(self, called: list[tuple[str, ...]]) -> list[tuple[str, ...]]:
        """Module paths in the order torch registers them, given the order flax first called
        them (the same for most models). A model that calls a module before one torch defines
        earlier (e.g. a post-norm block: sublayer, then its norm) reorders them here."""
        return called

    def init_model_fn(self, rng: int) -> tuple[Any, dict[str, Any]]:
        """(params, model_state): params is flax's nested dict; model_state holds the other
        variable collections (e.g. batch_stats), empty for models without any."""
        self.model = self.build_model()
        owners: dict[tuple[str, ...], type[nn.Module]] = {}

        def record_owner(next_fun, args, kwargs, context):
            owners[tuple(context.module.path)] = type(context.module)
            return next_fun(*args, **kwargs)

        # An "rbg" key: XLA compiles its random bits in ~3 s here; the default threefry hash,
        # unrolled for every parameter, took ~15 s to compile for the Fashion-MNIST ResNet.
        key = jax.random.key(rng, impl="rbg")
        with nn.intercept_methods(record_owner):
            variables = jax.jit(functools.partial(self.model.init, train=False))(
                {"params": key, "dropout": key}, self.init_inputs()
            )
        # Committed to the device, as the train step's outputs are: the second step must not
        # compile again because its inputs' placement changed.
        variables = dict(jax.device_put(variables, device()))
        params = variables.pop("params")
        # Parameter order: modules in the order they are first called, weight before bias;
        # torch's named_parameters() order for a model whose forward follows its __init__.
        call_order = {path: i for i, path in enumerate(self.module_order(list(owners)))}
        paths = sorted(
            (path for path, _ in _raw_paths(params)),
            key=lambda p: (call_order[p[:-1]], p[-1] not in TORCH_LEAF_NAMES),
        )
        shapes = {flatten_key(p): tuple(leaf.shape) for p, leaf in _raw_paths(params)}
        self._param_types = {
            flatten_key(p): self.param_type_of(flatten_key(p), p[-1], owners[p[:-1]]) for p in paths
        }
        self._param_shapes = {name: shapes[name] for name in self._param_types}
        return params, variables

    def model_fn(
        self,
        params: Any,
        batch: Batch,
        model_state: Any,
        mode: ForwardPassMode,
        rng: Any,
        update_batch_norm: bool,
    ) -> tuple[jax.Array, Any]:
        train = mode is ForwardPassMode.TRAIN
        inputs = batch["inputs"]
        if self.precision == "bfloat16":
            params, inputs = to_compute_dtype(params), to_compute_dtype(inputs)
        variables = {"params": params, **(model_state or {})}
        rngs = {"dropout": rng} if train and rng is not None else None
        if train and update_batch_norm and model_state:
            outputs, new_state = self.model.apply(
                variables, inputs, train=True, rngs=rngs, mutable=list(model_state)
            )
            return outputs.astype(jnp.float32), dict(new_state)
        return self.model.apply(variables, inputs, train=train, rngs=rngs).astype(jnp.float32), model_state

    def loss_fn(
        self,
        targets: jax.Array,
        outputs: jax.Array,
        mask: jax.Array | None = None,
        label_smoothing: float = 0.0,
    ) -> dict[str, Any]:
        """Same meaning as the torch loss: summed loss, number of valid examples, per example."""
        if self.loss_type is LossType.SOFTMAX_CROSS_ENTROPY:
            if isinstance(label_smoothing, (int, float)) and label_smoothing == 0.0:
                per_example = optax.softmax_cross_entropy_with_integer_labels(outputs, targets)
            else:
                labels = jax.nn.one_hot(targets, outputs.shape[-1], dtype=outputs.dtype)
                labels = optax.smooth_labels(labels, label_smoothing)
                per_example = optax.softmax_cross_entropy(outputs, labels)
        elif self.loss_type is LossType.MEAN_ABSOLUTE_ERROR:
            per_example = jnp.abs(outputs - targets)
        else:
            per_example = jnp.square(outputs - targets)
        if mask is None:
            return {
                "summed": per_example.sum(),
                "n_valid_examples": per_example.size,
                "per_example": per_example,
            }
        mask = mask.astype(per_example.dtype)
        return {
            "summed": (per_example * mask).sum(),
            "n_valid_examples": mask.sum(),
            "per_example": per_example * mask,
        }

    # ---- evaluation: one compiled batch function for every split --------------------------
    def eval_batch_sums(self, params: Any, model_state: Any, batch: Batch) -> dict[str, jax.Array]:
        """Sums over one batch's valid examples (`batch["weights"]`), including `count`."""
        raise NotImplementedError

    def eval_metrics(self, params: Any, model_state: Any, split: dict[str, Any]) -> dict[str, float]:
        """Means over the split of `eval_batch_sums`.

        Every batch has `eval_batch_size` rows (the last is padded with masked repeats), so
        the model is compiled once for validation and test alike.
        """
        n = len(next(iter(split.values())))
        totals: dict[str, float] = {}
        for start in range(0, n, self.eval_batch_size):
            batch = _take_rows(split, np.int32(start), self.eval_batch_size)
            for name, value in self._eval_batch_sums_jit(params, model_state, batch).items():
                totals[name] = totals.get(name, 0.0) + float(value)
        count = totals.pop("count")
        return {name: value / count for name, value in totals.items()}


@functools.partial(jax.jit, static_argnames="size")
def _take_rows(split: dict[str, jax.Array], start: jax.Array, size: int) -> Batch:
    """Rows start..start+size of a split with `weights` masking rows past its end."""
    n = len(next(iter(split.values())))
    positions = start + jnp.arange(size)
    rows = jnp.minimum(positions, n - 1)
    batch = {k: jnp.take(v, rows, axis=0) for k, v in split.items()}
    weights = (positions < n).astype(jnp.float32)
    if "weights" in batch:
        weights = weights * batch["weights"].astype(jnp.float32)
    batch["weights"] = weights
    return batch


@functools.partial(jax.jit, static_argnames="batch_size")
def _take_batch(train: dict[str, jax.Array], order: jax.Array, start: jax.Array, batch_size: int):
    idx = jax.lax.dynamic_slice_in_dim(order, start, batch_size)
    return {k: jnp.take(v, idx, axis=0) for k, v in train.items()}


# ---- the optimizer-plugin adapter: make_optimizer -> the full submission API --------------------


def make_train_step(
    workload: JaxWorkload,
    tx: optax.GradientTransformation,
    label_smoothing: float = 0.0,
    grad_clip_norm: float | None = None,
) -> Callable[..., tuple[Any, Any, Any, jax.Array]]:
    """The standard step, compiled once: (params, opt_state, model_state, batch, rng) ->
    (params, opt_state, model_state, mean loss). params and opt_state buffers are donated."""

    def mean_loss(params, model_state, batch, rng):
        outputs, new_model_state = workload.model_fn(
            params, batch, model_state, ForwardPassMode.TRAIN, rng, update_batch_norm=True
        )
        loss = workload.loss_fn(batch["targets"], outputs, batch.get("weights"), label_smoothing)
        return loss["summed"] / loss["n_valid_examples"], new_model_state

    def step(params, opt_state, model_state, batch, rng):
        (loss, new_model_state), grads = jax.value_and_grad(mean_loss, has_aux=True)(
            params, model_state, batch, rng
        )
        if grad_clip_norm:
            # torch.nn.utils.clip_grad_norm_'s rule, eps included, so both frameworks clip alike.
            scale = jnp.minimum(1.0, grad_clip_norm / (optax.tree.norm(grads) + 1e-6))
            grads = jax.tree.map(lambda g: g * scale, grads)
        updates, opt_state = tx.update(grads, opt_state, params)
        return optax.apply_updates(params, updates), opt_state, new_model_state, loss

    return jax.jit(step, donate_argnums=(0, 1))


def plugin_to_full(module: Any) -> dict[str, Any]:
    """Wrap a plugin's `make_optimizer(hparams, workload) -> optax.GradientTransformation` as the
    full API functions.

    The standard step (`make_train_step`): forward in train mode, mean loss over valid examples
    (with the hyperparameter `label_smoothing` if the search space has one), gradient, optional
    global gradient clipping (`grad_clip_norm`), `tx.update`, `optax.apply_updates`.
    optimizer_state = {"opt_state", "last_loss" (device scalar), "train_step" (compiled)}.
    """
    make_optimizer = module.make_optimizer

    def init_optimizer_state(workload, model_params, model_state, hyperparameters, rng):
        tx = make_optimizer(hyperparameters, workload)
        if not (callable(getattr(tx, "init", None)) and callable(getattr(tx, "update", None))):
            raise TypeError(
                f"make_optimizer must return an optax.GradientTransformation, got {type(tx).__name__}"
            )
        # Copies (a transformation may keep references to params, and both trees are donated),
        # committed to the device like the step's outputs, so step 2 does not compile again.
        opt_state = jax.device_put(jax.tree.map(jnp.copy, tx.init(model_params)), device())
        clip = hparam(hyperparameters, "grad_clip_norm", None)
        train_step = make_train_step(
            workload,
            tx,
            float(hparam(hyperparameters, "label_smoothing", 0.0)),
            float(clip) if clip else None,
        )
        return {"opt_state": opt_state, "last_loss": None, "train_step": train_step}

    def update_params(
        workload,
        current_param_container,
        current_params_types,
        model_state,
        hyperparameters,
        batch,
        loss_type,
        optimizer_state,
        eval_results,
        global_step,
        rng,
    ):
        params, opt_state, new_model_state, loss = optimizer_state["train_step"](
            current_param_container,
            optimizer_state["opt_state"],
            model_state,
            batch,
            jax.random.key(0) if rng is None else rng,
        )
        optimizer_state["opt_state"] = opt_state
        optimizer_state["last_loss"] = loss
        return optimizer_state, params, new_model_state

    functions = {
        "init_optimizer_state": init_optimizer_state,
        "update_params": update_params,
        "data_selection": next_batch,
        "prepare_for_eval": getattr(module, "prepare_for_eval", None),
    }
    if hasattr(module, "get_batch_size"):
        functions["get_batch_size"] = module.get_batch_size
    return functions


def warmup_cosine(
    peak_lr: float, warmup_steps: int, total_steps: int, final_lr_factor: float = 0.0
) -> optax.Schedule:
    """Linear warmup from 0 to `peak_lr` over `warmup_steps`, then cosine decay to
    `final_lr_factor` × `peak_lr` at `total_steps` (held there afterwards).

    Same schedule, step for step, as `algoperf.frameworks.torch.warmup_cosine` (whose LambdaLR
    gives the first optimizer step the factor at step 0, as optax's count 0 does here).
    """
    warmup_steps = max(1, int(warmup_steps))
    decay_steps = max(1, int(total_steps) - warmup_steps)
    return optax.warmup_cosine_decay_schedule(
        init_value=0.0,
        peak_value=peak_lr,
        warmup_steps=warmup_steps,
        decay_steps=warmup_steps + decay_steps,
        end_value=final_lr_factor * peak_lr,
    )


# ---- the model's state between the worker and the supervisor (algoperf.ipc) ---------------------


def _state_leaves(params: Any, model_state: Any) -> tuple[list[tuple[str, Any]], Any]:
    leaves, treedef = jax.tree_util.tree_flatten_with_path({"params": params, "model_state": model_state})
    return [(jax.tree_util.keystr(path), leaf) for path, leaf in leaves], treedef


def state_layout(params: Any, model_state: Any) -> list[tuple[str, str, tuple[int, ...], int]]:
    """(name, dtype, shape, bytes) of every array the supervisor needs to evaluate the model."""
    leaves, _ = _state_leaves(params, model_state)
    return [(name, np.dtype(leaf.dtype).name, tuple(leaf.shape), int(leaf.nbytes)) for name, leaf in leaves]


def state_views(block: Any, layout: list) -> dict[str, np.ndarray]:
    return block.numpy_views(layout)


def bind_state(params: Any, model_state: Any, views: dict[str, np.ndarray]) -> None:
    """JAX arrays live in the runtime's own buffers: nothing to bind; export copies."""


def export_state(params: Any, model_state: Any, views: dict[str, np.ndarray]) -> None:
    """Worker, at the end of a timed interval: device -> shared host buffers, one copy."""
    from algoperf.rules import check_param_shapes

    leaves, _ = _state_leaves(params, model_state)
    check_param_shapes(
        {k: tuple(v.shape) for k, v in views.items()}, {k: tuple(leaf.shape) for k, leaf in leaves}
    )
    for name, leaf in leaves:
        views[name][...] = np.asarray(leaf)


def import_state(params: Any, model_state: Any, views: dict[str, np.ndarray]) -> tuple[Any, Any]:
    """Supervisor: a device copy of the worker's state, shaped like the supervisor's own model."""
    leaves, treedef = _state_leaves(params, model_state)
    arrays = [jax.device_put(np.array(views[name]), device()) for name, _ in leaves]
    restored = jax.tree_util.tree_unflatten(treedef, arrays)
    return restored["params"], restored["model_state"]
