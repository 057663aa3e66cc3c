"""The JAX optimizer-plugin adapter: `make_optimizer(hparams, workload)` -> an
optax.GradientTransformation, run by one compiled standard step."""

from __future__ import annotations

import inspect
from collections.abc import Callable
from types import ModuleType
from typing import Any

import flax.linen as nn
import jax
import jax.numpy as jnp
import optax

from algoperf.frameworks.backend import UpdateCall, full_api, step_kind_of
from algoperf.frameworks.jax.runtime import device
from algoperf.spec import ForwardPassMode, hparam
from algoperf.workload import Workload

# What the standard step offers a GradientTransformationExtraArgs besides the gradient (only
# the names its update accepts are passed; unused ones cost nothing once compiled):
#   value     the mean loss at params             grad      the (clipped) gradient
#   value_fn  params -> mean loss on this batch   obj_fn    the same (optax's Hutchinson/Sophia name)
#   grad_fn   (params, i) -> the (clipped) gradient on this batch (optax.contrib.sam's opaque mode)
#   layer_inputs        {dense layer name: its input in this step, (..., fan_in)}
#   layer_output_grads  {dense layer name: d(mean loss)/d(its output), (..., fan_out)}
# (the layer name is the module's, e.g. "blocks.0.mlp.fc_in" for "blocks.0.mlp.fc_in.weight":
# what Kronecker-factored methods build their factors from; torch plugins hook the model)
EXTRA_ARGS = ("value", "grad", "value_fn", "obj_fn", "grad_fn", "layer_inputs", "layer_output_grads")
LAYER_ARGS = ("layer_inputs", "layer_output_grads")


def accepted_extra_args(tx: Any, capture_layers: bool = False) -> tuple[str, ...]:
    """The EXTRA_ARGS names `tx.update` takes. An update that takes **extra_args (optax.chain
    does) gets them all, the layer statistics only when the plugin asks (`capture_layers =
    True`): recording every dense layer is not free."""
    try:
        parameters = inspect.signature(tx.update).parameters
    except (TypeError, ValueError):
        return ()
    if any(p.kind is inspect.Parameter.VAR_KEYWORD for p in parameters.values()):
        return EXTRA_ARGS if capture_layers else tuple(n for n in EXTRA_ARGS if n not in LAYER_ARGS)
    return tuple(name for name in EXTRA_ARGS if name in parameters)


def make_train_step(
    workload: Workload,
    tx: optax.GradientTransformation,
    label_smoothing: float = 0.0,
    grad_clip_norm: float | None = None,
    dropout_rate: float | None = None,
    step_kind: str = "gradient",
    capture_layers: bool = False,
) -> Callable[..., tuple[Any, Any, Any, jax.Array]]:
    """The standard step, compiled once: (params, opt_state, model_state, batch, rng) ->
    (params, opt_state, model_state, mean loss). params and opt_state buffers are donated.
    `dropout_rate` (None: the workload's default) is fixed for the step's lifetime; the
    dropout masks are drawn from `rng`. With step_kind "forward_only" no gradient is taken:
    `tx.update` receives zeros and evaluates the loss through `value_fn`."""
    extra_names = accepted_extra_args(tx, capture_layers)
    if step_kind == "forward_only" and any(name in LAYER_ARGS for name in extra_names):
        raise ValueError("step_kind = 'forward_only' takes no gradient, so it has no layer output gradients")

    def mean_loss(params, model_state, batch, rng):
        outputs, new_model_state = workload.model_fn(
            params,
            batch,
            model_state,
            ForwardPassMode.TRAIN,
            rng,
            update_batch_norm=True,
            dropout_rate=dropout_rate,
        )
        loss = workload.loss_fn(batch["targets"], outputs, batch.get("weights"), label_smoothing)
        return loss["summed"] / loss["n_valid_examples"], new_model_state

    def clipped(grads):
        if not grad_clip_norm:
            return grads
        # torch.nn.utils.clip_grad_norm_'s rule, eps included, so both frameworks clip alike.
        scale = jnp.minimum(1.0, grad_clip_norm / (optax.tree.norm(grads) + 1e-6))
        return jax.tree.map(lambda g: g * scale, grads)

    def tapped_loss(params, taps, model_state, batch, rng):
        """mean_loss, recording every dense layer's input and output and adding `taps[name]`
        (zeros) to its output, so the gradient with respect to a tap is the output gradient."""
        inputs, outputs = {}, {}

        def intercept(next_fun, args, kwargs, context):
            if context.method_name != "__call__" or not isinstance(context.module, nn.Dense):
                return next_fun(*args, **kwargs)
            name = ".".join(context.module.path)
            inputs[name] = args[0]
            outputs[name] = next_fun(*args, **kwargs)
            return outputs[name] + taps[name] if name in taps else outputs[name]

        with nn.intercept_methods(intercept):
            loss, new_model_state = mean_loss(params, model_state, batch, rng)
        return loss, (new_model_state, inputs, outputs)

    def layer_step(params, model_state, batch, rng):
        """(loss, new model state, gradient, layer inputs, layer output gradients)."""
        shapes = jax.eval_shape(tapped_loss, params, {}, model_state, batch, rng)[1][2]
        taps = jax.tree.map(lambda s: jnp.zeros(s.shape, s.dtype), shapes)
        (loss, (new_model_state, inputs, _)), (grads, output_grads) = jax.value_and_grad(
            tapped_loss, argnums=(0, 1), has_aux=True
        )(params, taps, model_state, batch, rng)
        return loss, new_model_state, grads, inputs, output_grads

    def step(params, opt_state, model_state, batch, rng):
        def value_fn(p):
            return mean_loss(p, model_state, batch, rng)[0]

        layers = {}
        if any(name in LAYER_ARGS for name in extra_names):
            loss, new_model_state, grads, inputs, output_grads = layer_step(params, model_state, batch, rng)
            grads = clipped(grads)
            layers = {"layer_inputs": inputs, "layer_output_grads": output_grads}
        elif step_kind == "forward_only":
            loss, new_model_state = mean_loss(params, model_state, batch, rng)
            grads = jax.tree.map(jnp.zeros_like, params)
        else:
            (loss, new_model_state), grads = jax.value_and_grad(mean_loss, has_aux=True)(
                params, model_state, batch, rng
            )
            grads = clipped(grads)
        offered = {
            "value": loss,
            "grad": grads,
            "value_fn": value_fn,
            "obj_fn": value_fn,
            "grad_fn": lambda p, *_: clipped(jax.grad(value_fn)(p)),
            **layers,
        }
        extra = {name: offered[name] for name in extra_names}
        updates, opt_state = tx.update(grads, opt_state, params, **extra)
        return optax.apply_updates(params, updates), opt_state, new_model_state, loss

    return jax.jit(step, donate_argnums=(0, 1))


def plugin_to_full(module: ModuleType) -> dict[str, Any]:
    """Wrap a plugin's `make_optimizer(hparams, workload) -> optax.GradientTransformation` as the
    full API functions.

    The standard step (`make_train_step`): forward in train mode (with the hyperparameter
    `dropout_rate` if the search space has one, fixed per trial so it is compiled in), mean loss
    over valid examples (with the hyperparameter `label_smoothing` if the search space has one),
    gradient, optional global gradient clipping (`grad_clip_norm`), `tx.update`,
    `optax.apply_updates`. A GradientTransformationExtraArgs also receives what EXTRA_ARGS
    lists, by the names its update accepts (SAM's grad_fn, Sophia's obj_fn, a line search's
    value_fn). To give parts of the model different optimizers, use optax.partition with
    labels from `workload.param_info` (algoperf.frameworks.jax.label_params).
    optimizer_state = {"opt_state", "last_loss" (device scalar), "train_step" (compiled)}.
    """
    make_optimizer = module.make_optimizer
    step_kind = step_kind_of(module)

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
        dropout_rate = hparam(hyperparameters, "dropout_rate", None)
        train_step = make_train_step(
            workload,
            tx,
            float(hparam(hyperparameters, "label_smoothing", 0.0)),
            float(clip) if clip else None,
            None if dropout_rate is None else float(dropout_rate),
            step_kind,
            bool(getattr(module, "capture_layers", False)),
        )
        return {"opt_state": opt_state, "last_loss": None, "train_step": train_step}

    def standard_step(call: UpdateCall) -> tuple[Any, Any, Any]:
        optimizer_state = call.optimizer_state
        params, opt_state, new_model_state, loss = optimizer_state["train_step"](
            call.params,
            optimizer_state["opt_state"],
            call.model_state,
            call.batch,
            jax.random.key(0) if call.rng is None else call.rng,
        )
        optimizer_state["opt_state"] = opt_state
        optimizer_state["last_loss"] = loss
        return optimizer_state, params, new_model_state

    return full_api(module, init_optimizer_state, standard_step, diagnostics_input="opt_state")
