"""JaxWorkload: the JAX base of every JAX workload — the array namespace, cross-entropy, the
compiled gathers of train and eval batches, the forward pass, what owns each parameter, and
the torch-style parameter order. Everything else a workload does is written once in
`algoperf.workload.Workload`."""

from __future__ import annotations

import functools
from collections.abc import Mapping
from typing import Any

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import optax

from algoperf.errors import AlgoperfError
from algoperf.frameworks.jax.dropout import is_zero
from algoperf.frameworks.jax.naming import TORCH_LEAF_NAMES, flatten_key, raw_paths
from algoperf.frameworks.jax.runtime import device
from algoperf.spec import Batch, ForwardPassMode
from algoperf.workload import ModuleKind, Workload, module_kind

# What kind of layer owns a parameter, for the typing rule in algoperf.workload.
MODULE_KINDS = (
    (nn.Embed, ModuleKind.EMBEDDING),
    ((nn.LayerNorm, nn.GroupNorm, nn.BatchNorm, nn.RMSNorm), ModuleKind.NORM),
    ((nn.Conv, nn.ConvTranspose), ModuleKind.CONV),
)


def to_compute_dtype(tree: Any, dtype: Any = jnp.bfloat16) -> Any:
    """Mixed precision: floating leaves cast to `dtype` for the forward pass. The float32
    parameters stay the master copy (the cast's gradient is float32); flax norms compute their
    statistics in float32 whatever the input dtype, and the outputs are cast back to float32."""
    return jax.tree.map(lambda x: x.astype(dtype) if jnp.issubdtype(x.dtype, jnp.floating) else x, tree)


@functools.partial(jax.jit, static_argnames="size")
def _take_rows(split: dict[str, jax.Array], start: jax.Array, size: int) -> Batch:
    """Rows start..start+size of a split with `weights` masking rows past its end (so every
    eval batch has the same shape and the model compiles once for all splits)."""
    n = len(next(iter(split.values())))
    positions = start + jnp.arange(size)
    rows = jnp.minimum(positions, n - 1)
    batch = {k: jnp.take(v, rows, axis=0) for k, v in split.items()}
    weights = (positions < n).astype(jnp.float32)
    if "weights" in batch:
        weights = weights * batch["weights"].astype(jnp.float32)
    batch["weights"] = weights
    return batch


class JaxWorkload(Workload):
    """A workload's JAX side: subclasses provide `build_model()` (a flax.linen Module whose
    `__call__(model_inputs(batch), train)` returns the outputs; with `supports_dropout`, also
    taking `dropout_rate=`) and `init_inputs()`."""

    framework = "jax"
    xp = jnp

    def __init__(self, size: str = "small", data_dir: str | None = None):
        super().__init__(size, data_dir)
        self.model: nn.Module | None = None
        self._gather_jit = jax.jit(self._gather)
        self._eval_batch_sums_jit = jax.jit(self._eval_batch_sums)

    # ---- data -----------------------------------------------------------------------------
    def to_device(self, arrays: dict[str, np.ndarray]) -> dict[str, jax.Array]:
        """Device arrays in JAX's canonical dtypes (int64 -> int32 unless x64 is enabled)."""
        dev = device()
        return {
            k: jax.device_put(np.ascontiguousarray(v, dtype=jax.dtypes.canonicalize_dtype(v.dtype)), dev)
            for k, v in arrays.items()
        }

    def _gather(self, source: dict[str, jax.Array], indices: jax.Array) -> Batch:
        return self.batch_from_rows({k: jnp.take(v, indices, axis=0, mode="clip") for k, v in source.items()})

    def gather_train_batch(self, source: dict[str, Any], indices: np.ndarray) -> Batch:
        """One compiled gather serves every step (indices always have the batch's shape)."""
        return self._gather_jit(source, jax.device_put(np.asarray(indices, dtype=np.int32), device()))

    def eval_batch(self, split: Mapping[str, Any], start: int) -> Batch:
        return _take_rows(dict(split), np.int32(start), self.eval_batch_size)

    # ---- model ----------------------------------------------------------------------------
    def build_model(self) -> nn.Module:
        raise NotImplementedError

    def init_inputs(self) -> Any:
        """A dummy input batch (any batch size) that `init_model_fn` traces the model with."""
        raise NotImplementedError

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
            (path for path, _ in raw_paths(params)),
            key=lambda p: (call_order[p[:-1]], p[-1] not in TORCH_LEAF_NAMES),
        )
        shapes = {flatten_key(p): tuple(leaf.shape) for p, leaf in raw_paths(params)}
        types = {
            flatten_key(p): self.param_type_of(flatten_key(p), module_kind(owners[p[:-1]], MODULE_KINDS))
            for p in paths
        }
        self._set_params(types, {name: shapes[name] for name in types})
        return params, variables

    def model_fn(
        self,
        params: Any,
        batch: Batch,
        model_state: Any,
        mode: ForwardPassMode,
        rng: Any,
        update_batch_norm: bool,
        dropout_rate: Any = None,
    ) -> tuple[jax.Array, Any]:
        train = mode is ForwardPassMode.TRAIN
        rate = self.resolve_dropout_rate(dropout_rate)
        if train and rng is None and not is_zero(rate):
            raise AlgoperfError(
                f"{self.full_name}: dropout_rate={rate if isinstance(rate, float) else '(traced)'} "
                "in train mode needs an rng to draw the dropout masks from; pass a jax.random key "
                "as model_fn's rng (or dropout_rate=0)"
            )
        inputs = self.model_inputs(batch)
        if self.precision == "bfloat16":
            params, inputs = to_compute_dtype(params), to_compute_dtype(inputs)
        variables = {"params": params, **(model_state or {})}
        rngs = {"dropout": rng} if train and rng is not None else None
        # Models with dropout take the rate as a call argument (0 in eval: nothing is dropped).
        kwargs = {"dropout_rate": rate if train else 0.0} if self.supports_dropout else {}
        if train and update_batch_norm and model_state:
            outputs, new_state = self.model.apply(
                variables, inputs, train=True, rngs=rngs, mutable=list(model_state), **kwargs
            )
            return outputs.astype(jnp.float32), dict(new_state)
        outputs = self.model.apply(variables, inputs, train=train, rngs=rngs, **kwargs)
        return outputs.astype(jnp.float32), model_state

    def resolve_dropout_rate(self, dropout_rate: Any) -> Any:
        """`Workload.resolve_dropout_rate`, and a traced rate (inside jit) as it is, refused by
        a model without dropout."""
        if isinstance(dropout_rate, jax.core.Tracer):
            if not self.supports_dropout:
                raise AlgoperfError(
                    f"the {self.full_name} model has no dropout layers, so a traced dropout_rate "
                    "(a value only known when the compiled function runs) cannot be checked to "
                    "be 0; pass dropout_rate as a Python number: 0 or None"
                )
            return dropout_rate
        return super().resolve_dropout_rate(dropout_rate)

    def per_example_cross_entropy(self, logits: Any, labels: Any, label_smoothing: float) -> jax.Array:
        if isinstance(label_smoothing, (int, float)) and label_smoothing == 0.0:
            return optax.softmax_cross_entropy_with_integer_labels(logits, labels)
        one_hot = jax.nn.one_hot(labels, logits.shape[-1], dtype=logits.dtype)
        return optax.softmax_cross_entropy(logits, optax.smooth_labels(one_hot, label_smoothing))

    # ---- evaluation: one compiled batch function for every split --------------------------
    def _eval_batch_sums(self, params: Any, model_state: Any, batch: Batch) -> dict[str, jax.Array]:
        outputs, _ = self.model_fn(params, batch, model_state, ForwardPassMode.EVAL, None, False)
        return self.batch_sums(outputs, batch)

    def eval_batch_sums(self, params: Any, model_state: Any, batch: Batch) -> dict[str, Any]:
        return self._eval_batch_sums_jit(params, model_state, batch)
