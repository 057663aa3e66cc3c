"""Fashion-MNIST in JAX/Flax: the same small ResNet as torch.py, layer for layer.

Module names mirror the torch model's (`features.3.body.0`, `head`), so parameter names match
its `named_parameters()`; initialisers reproduce torch's defaults, so both frameworks start from
the same distribution. Inputs arrive NCHW (the shared pipeline) and are made NHWC here.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import flax.linen as nn
import jax
import jax.numpy as jnp

from algoperf.frameworks.jax import (
    TORCH_DEFAULT_KERNEL,
    TORCH_NORM_EPS,
    JaxWorkload,
    dropout,
    torch_default_bias,
)

from .workload import FashionMnistGeluWorkload, FashionMnistWorkload

ACTIVATIONS: dict[str, Callable[[jax.Array], jax.Array]] = {
    "relu": jax.nn.relu,
    "gelu": lambda x: jax.nn.gelu(x, approximate=True),  # torch's GELU(approximate="tanh")
}


def conv(channels: int, name: str, stride: int = 1) -> nn.Conv:
    return nn.Conv(
        channels,
        (3, 3),
        strides=stride,
        padding=((1, 1), (1, 1)),
        use_bias=False,
        kernel_init=TORCH_DEFAULT_KERNEL,
        name=name,
    )


def group_norm(name: str) -> nn.GroupNorm:
    return nn.GroupNorm(num_groups=8, epsilon=TORCH_NORM_EPS, use_fast_variance=False, name=name)


class ResidualBody(nn.Module):
    """torch's `body` Sequential: conv(0) norm(1) act(2) conv(3) norm(4)."""

    channels: int
    activation: str

    @nn.compact
    def __call__(self, x: jax.Array) -> jax.Array:
        x = ACTIVATIONS[self.activation](group_norm("1")(conv(self.channels, "0")(x)))
        return group_norm("4")(conv(self.channels, "3")(x))


class ResidualBlock(nn.Module):
    channels: int
    activation: str

    @nn.compact
    def __call__(self, x: jax.Array) -> jax.Array:
        body = ResidualBody(self.channels, self.activation, name="body")
        return ACTIVATIONS[self.activation](x + body(x))


class Features(nn.Module):
    """torch's `features` Sequential, numbered the same way (activations take an index too)."""

    channels: tuple[int, ...]
    activation: str
    stem_stride: int = 1

    @nn.compact
    def __call__(self, x: jax.Array) -> jax.Array:
        act = ACTIVATIONS[self.activation]
        x = act(
            group_norm("1")(conv(self.channels[0], "0", stride=self.stem_stride)(x))
        )  # index 2 is the activation
        index = 3
        for i, ch in enumerate(self.channels):
            x = ResidualBlock(ch, self.activation, name=str(index))(x)
            index += 1
            if i + 1 < len(self.channels):
                out = self.channels[i + 1]
                x = act(group_norm(str(index + 1))(conv(out, str(index), stride=2)(x)))
                index += 3
        return x


class SmallResNet(nn.Module):
    """stem (stride `stem_stride`) -> [residual block -> strided conv] per stage -> global
    average pool -> dropout (training only, at the call's `dropout_rate`) -> linear."""

    channels: tuple[int, ...]
    num_classes: int
    activation: str
    stem_stride: int = 1

    @nn.compact
    def __call__(self, x: jax.Array, train: bool = False, dropout_rate: Any = 0.0) -> jax.Array:
        x = jnp.transpose(x, (0, 2, 3, 1))  # NCHW -> NHWC
        x = Features(self.channels, self.activation, self.stem_stride, name="features")(x)
        pooled = dropout(self, x.mean(axis=(1, 2)), dropout_rate, train)
        return nn.Dense(
            self.num_classes,
            kernel_init=TORCH_DEFAULT_KERNEL,
            bias_init=torch_default_bias(self.channels[-1]),
            name="head",
        )(pooled)


class FashionMnistJaxWorkload(FashionMnistWorkload, JaxWorkload):
    def build_model(self) -> nn.Module:
        return SmallResNet(
            tuple(self.options["channels"]),
            self.num_classes,
            self.activation,
            stem_stride=int(self.options.get("stem_stride", 1)),
        )

    def init_inputs(self) -> jax.Array:
        return jnp.zeros((1, 1, 28, 28), jnp.float32)


class FashionMnistGeluJaxWorkload(FashionMnistGeluWorkload, FashionMnistJaxWorkload):
    pass
