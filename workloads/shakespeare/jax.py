"""Shakespeare in JAX/Flax: the same decoder-only character Transformer as torch.py.

token + learned position embeddings -> N blocks (causal self-attention with separate q, k, v,
out projections, then a GELU MLP; pre-norm LayerNorm, or post-norm in the variant) -> LayerNorm
(pre-norm only) -> untied linear head over the 84 characters.

Dropout (training only, at the `dropout_rate` the model is called with): on the embedding sum,
and on each residual branch (attention output, MLP output) before its add, as in torch.py.

Module names mirror the torch model's (`blocks.0.attn.q`, `head`), so parameter names match its
`named_parameters()`; the initialisation is torch.py's GPT-2 style one.
"""

from __future__ import annotations

import functools
import math
from typing import Any

import flax.linen as nn
import jax
import jax.numpy as jnp

from algoperf.frameworks.jax import JaxWorkload, dropout, torch_layer_norm

from .workload import ShakespearePostNormWorkload, ShakespeareWorkload

ACTIVATIONS = {
    "gelu": lambda x: jax.nn.gelu(x, approximate=True),  # torch's GELU(approximate="tanh")
    "relu": jax.nn.relu,
}
INIT_STD = 0.02


def dense(features: int, name: str, std: float = INIT_STD, use_bias: bool = True) -> nn.Dense:
    return nn.Dense(
        features,
        use_bias=use_bias,
        kernel_init=nn.initializers.normal(std),
        bias_init=nn.initializers.zeros,
        name=name,
    )


class CausalSelfAttention(nn.Module):
    """Multi-head causal attention. No biases, so every attention parameter has an exact type."""

    d_model: int
    num_heads: int
    out_std: float

    @nn.compact
    def __call__(self, x: jax.Array) -> jax.Array:
        batch, length, _ = x.shape

        def heads(t: jax.Array) -> jax.Array:  # (B, T, C) -> (B, T, heads, C / heads)
            return t.reshape(batch, length, self.num_heads, self.d_model // self.num_heads)

        q, k, v = (heads(dense(self.d_model, n, use_bias=False)(x)) for n in ("q", "k", "v"))
        y = jax.nn.dot_product_attention(q, k, v, is_causal=True)
        return dense(self.d_model, "out", self.out_std, use_bias=False)(y.reshape(x.shape))


class MLP(nn.Module):
    d_model: int
    activation: str
    out_std: float

    @nn.compact
    def __call__(self, x: jax.Array) -> jax.Array:
        x = ACTIVATIONS[self.activation](dense(4 * self.d_model, "fc_in")(x))
        return dense(self.d_model, "fc_out", self.out_std)(x)


class Block(nn.Module):
    d_model: int
    num_heads: int
    pre_norm: bool
    activation: str
    out_std: float

    @nn.compact
    def __call__(self, x: jax.Array, train: bool = False, dropout_rate: Any = 0.0) -> jax.Array:
        attn = CausalSelfAttention(self.d_model, self.num_heads, self.out_std, name="attn")
        mlp = MLP(self.d_model, self.activation, self.out_std, name="mlp")
        norm_attn, norm_mlp = torch_layer_norm("norm_attn"), torch_layer_norm("norm_mlp")

        def drop(branch: jax.Array) -> jax.Array:
            return dropout(self, branch, dropout_rate, train)

        if self.pre_norm:
            x = x + drop(attn(norm_attn(x)))
            return x + drop(mlp(norm_mlp(x)))
        x = norm_attn(x + drop(attn(x)))
        return norm_mlp(x + drop(mlp(x)))


class CharTransformer(nn.Module):
    vocab_size: int
    context: int
    d_model: int
    num_layers: int
    num_heads: int
    pre_norm: bool = True
    activation: str = "gelu"

    @nn.compact
    def __call__(self, tokens: jax.Array, train: bool = False, dropout_rate: Any = 0.0) -> jax.Array:
        """(B, T) token ids -> (B, T, vocab_size) logits for the next character."""
        embed = functools.partial(
            nn.Embed, features=self.d_model, embedding_init=nn.initializers.normal(INIT_STD)
        )
        x = embed(self.vocab_size, name="token_embedding")(tokens.astype(jnp.int32))
        x = x + embed(self.context, name="position_embedding")(jnp.arange(tokens.shape[1]))
        x = dropout(self, x, dropout_rate, train)
        # GPT-2: residual projections scaled by 1/sqrt(2 layers), as in torch.py.
        out_std = INIT_STD / math.sqrt(2 * self.num_layers)
        for i in range(self.num_layers):
            block = Block(
                self.d_model, self.num_heads, self.pre_norm, self.activation, out_std, name=f"blocks.{i}"
            )
            x = block(x, train, dropout_rate)
        if self.pre_norm:  # post-norm blocks already end in a LayerNorm
            x = torch_layer_norm("norm_final")(x)
        return dense(self.vocab_size, "head")(x)


class ShakespeareJaxWorkload(ShakespeareWorkload, JaxWorkload):
    def build_model(self) -> nn.Module:
        o = self.options
        return CharTransformer(
            self.vocab_size,
            int(o["context"]),
            int(o["d_model"]),
            int(o["num_layers"]),
            int(o["num_heads"]),
            pre_norm=self.pre_norm,
            activation=self.activation,
        )

    def init_inputs(self) -> jax.Array:
        return jnp.zeros((1, int(self.options["context"])), jnp.int32)

    def module_order(self, called: list[tuple[str, ...]]) -> list[tuple[str, ...]]:
        """torch registers each block's modules as norm_attn, attn, norm_mlp, mlp; a post-norm
        block calls each norm after its sublayer, so flax meets them in another order."""
        rank = {"norm_attn": 0, "attn": 1, "norm_mlp": 2, "mlp": 3}
        in_block = [i for i, path in enumerate(called) if path and path[0].startswith("blocks.")]
        first_seen = {}
        for i in in_block:
            first_seen.setdefault(called[i][0], i)

        def key(i: int) -> tuple[int, int, int]:
            path = called[i]
            return first_seen[path[0]], rank.get(path[1], 4) if len(path) > 1 else -1, i

        # Blocks keep their places among the other modules; only their insides are reordered.
        reordered = iter(called[i] for i in sorted(in_block, key=key))
        slots = set(in_block)
        return [next(reordered) if i in slots else path for i, path in enumerate(called)]


class ShakespearePostNormJaxWorkload(ShakespearePostNormWorkload, ShakespeareJaxWorkload):
    pass
