"""QM9 in JAX/Flax: the same GINE-style message-passing network as torch.py, layer for layer.

node encoder -> N residual layers (pre-norm LayerNorm; message = ReLU(h_src + edge encoding),
summed at the destination; MLP update) -> LayerNorm -> sum (or mean) over the graph's real nodes
-> MLP head -> the standardised HOMO-LUMO gap. Graphs arrive padded to 9 nodes and 26 edges,
so every batch has static shapes; masks drop the padding.

Dropout (training only, at the `dropout_rate` the model is called with), where AlgoPerf's OGBG
network has it: after the hidden activation of each layer's MLP update, and on the pooled graph
vector before the head.

Module names mirror the torch model's (`layers.0.edge_encoder`, `head.2`), and modules are
called in the order torch's __init__ creates them, so parameter names and order match its
`named_parameters()`; initialisers reproduce torch's defaults.
"""

from __future__ import annotations

from typing import Any

import flax.linen as nn
import jax
import jax.numpy as jnp

from algoperf.frameworks.jax import (
    TORCH_DEFAULT_KERNEL,
    JaxWorkload,
    dropout,
    torch_default_bias,
    torch_layer_norm,
)
from algoperf.spec import Batch

from .workload import (
    EDGE_FEATURES,
    MAX_EDGES,
    MAX_NODES,
    NODE_FEATURES,
    Qm9MeanWorkload,
    Qm9Workload,
)


def linear(features: int, fan_in: int, name: str, zero: bool = False) -> nn.Dense:
    """torch's nn.Linear(fan_in, features), with torch's initialisation (or zeros)."""
    if zero:
        return nn.Dense(
            features, kernel_init=nn.initializers.zeros, bias_init=nn.initializers.zeros, name=name
        )
    return nn.Dense(
        features, kernel_init=TORCH_DEFAULT_KERNEL, bias_init=torch_default_bias(fan_in), name=name
    )


class Mlp(nn.Module):
    """torch's Sequential(Linear(0), ReLU(1), Linear(2)); the last Linear optionally zero; the
    hidden activation optionally through dropout."""

    hidden: int
    out: int
    fan_in: int
    zero_last: bool = False

    @nn.compact
    def __call__(self, x: jax.Array, train: bool = False, dropout_rate: Any = 0.0) -> jax.Array:
        x = jax.nn.relu(linear(self.hidden, self.fan_in, "0")(x))
        x = dropout(self, x, dropout_rate, train)
        return linear(self.out, self.hidden, "2", zero=self.zero_last)(x)


class GINELayer(nn.Module):
    """h <- h + MLP(x + sum_{edges j->i} ReLU(x_j + W_e e_ji)), with x = LayerNorm(h); the MLP's
    hidden activation goes through dropout."""

    hidden: int

    @nn.compact
    def __call__(
        self,
        h: jax.Array,
        src: jax.Array,
        dst: jax.Array,
        edge_features: jax.Array,
        edge_mask: jax.Array,
        train: bool = False,
        dropout_rate: Any = 0.0,
    ) -> jax.Array:
        x = torch_layer_norm("norm")(h)
        edges = linear(self.hidden, EDGE_FEATURES, "edge_encoder")(edge_features)
        messages = jax.nn.relu(x[src] + edges) * edge_mask[:, None]
        aggregated = jax.ops.segment_sum(messages, dst, num_segments=x.shape[0])
        mlp = Mlp(2 * self.hidden, self.hidden, self.hidden, name="mlp")
        return h + mlp(x + aggregated, train, dropout_rate)


class Layers(nn.Module):
    """torch's ModuleList `layers`: GINE layers named 0..N-1."""

    hidden: int
    num_layers: int

    @nn.compact
    def __call__(
        self, h: jax.Array, *graph: jax.Array, train: bool = False, dropout_rate: Any = 0.0
    ) -> jax.Array:
        for i in range(self.num_layers):
            h = GINELayer(self.hidden, name=str(i))(h, *graph, train, dropout_rate)
        return h


class GINE(nn.Module):
    hidden: int
    num_layers: int
    readout: str = "sum"
    dtype: Any = jnp.float32  # compute dtype of the graph arrays (bfloat16: mixed precision)

    @nn.compact
    def __call__(self, batch: Batch, train: bool = False, dropout_rate: Any = 0.0) -> jax.Array:
        """A batch of padded graphs -> (B,) predictions of the standardised target."""
        node_features, node_mask = batch["inputs"], batch["node_mask"]
        num_graphs = node_features.shape[0]
        # Flatten the graphs into one big graph of B * 9 nodes; edges index into it.
        offsets = jnp.arange(num_graphs, dtype=jnp.int32)[:, None] * MAX_NODES
        edge_index = batch["edge_index"].astype(jnp.int32)
        src = (edge_index[..., 0] + offsets).reshape(-1)
        dst = (edge_index[..., 1] + offsets).reshape(-1)
        edge_features = batch["edge_features"].reshape(src.shape[0], -1).astype(self.dtype)
        edge_mask = batch["edge_mask"].reshape(-1).astype(self.dtype)

        nodes = node_features.reshape(num_graphs * MAX_NODES, -1).astype(self.dtype)
        h = linear(self.hidden, NODE_FEATURES, "node_encoder")(nodes)
        layers = Layers(self.hidden, self.num_layers, name="layers")
        h = layers(h, src, dst, edge_features, edge_mask, train=train, dropout_rate=dropout_rate)
        h = torch_layer_norm("norm_final")(h).reshape(num_graphs, MAX_NODES, -1)
        mask = node_mask.astype(self.dtype)[..., None]
        pooled = (h * mask).sum(axis=1)
        if self.readout == "mean":
            pooled = pooled / jnp.maximum(mask.sum(axis=1), 1.0)
        # The last layer starts at zero: predict the train mean first (see torch.py).
        head = Mlp(self.hidden, 1, self.hidden, zero_last=True, name="head")
        return head(dropout(self, pooled, dropout_rate, train)).squeeze(-1)


class Qm9JaxWorkload(Qm9Workload, JaxWorkload):
    def build_model(self) -> nn.Module:
        dtype = jnp.bfloat16 if self.precision == "bfloat16" else jnp.float32
        return GINE(int(self.options["hidden"]), int(self.options["num_layers"]), self.readout, dtype)

    def init_inputs(self) -> Batch:
        """A dummy padded batch of one empty graph (the model reads several arrays)."""
        return {
            "inputs": jnp.zeros((1, MAX_NODES, NODE_FEATURES), jnp.uint8),
            "node_mask": jnp.zeros((1, MAX_NODES), bool),
            "edge_index": jnp.zeros((1, MAX_EDGES, 2), jnp.uint8),
            "edge_features": jnp.zeros((1, MAX_EDGES, EDGE_FEATURES), jnp.uint8),
            "edge_mask": jnp.zeros((1, MAX_EDGES), bool),
        }


class Qm9MeanJaxWorkload(Qm9MeanWorkload, Qm9JaxWorkload):
    pass
