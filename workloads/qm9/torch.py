"""QM9 in PyTorch: a GINE-style message-passing network with edge features, readable top to bottom.

node encoder -> N residual layers (pre-norm LayerNorm; message = ReLU(h_src + edge encoding),
summed at the destination; MLP update) -> LayerNorm -> sum (or mean) over the graph's real nodes
-> MLP head -> the standardised HOMO-LUMO gap. Graphs arrive padded to 9 nodes and 26 edges,
so every batch has static shapes; masks drop the padding.

Dropout (training only, at the `dropout_rate` the model is called with), where AlgoPerf's OGBG
network has it: after the hidden activation of each layer's MLP update, and on the pooled graph
vector before the head.
"""

from __future__ import annotations

import torch
from torch import nn
from torch.nn import functional as F

from algoperf.frameworks.torch import TorchWorkload
from algoperf.frameworks.torch.workload import dropout
from algoperf.spec import Batch

from .workload import (
    EDGE_FEATURES,
    MAX_NODES,
    NODE_FEATURES,
    Qm9MeanWorkload,
    Qm9Workload,
)


class GINELayer(nn.Module):
    """h <- h + MLP(x + sum_{edges j->i} ReLU(x_j + W_e e_ji)), with x = LayerNorm(h); the MLP's
    hidden activation goes through dropout."""

    def __init__(self, hidden: int):
        super().__init__()
        self.norm = nn.LayerNorm(hidden)
        self.edge_encoder = nn.Linear(EDGE_FEATURES, hidden)
        self.mlp = nn.Sequential(nn.Linear(hidden, 2 * hidden), nn.ReLU(), nn.Linear(2 * hidden, hidden))

    def forward(
        self,
        h: torch.Tensor,
        src: torch.Tensor,
        dst: torch.Tensor,
        edge_features: torch.Tensor,
        edge_mask: torch.Tensor,
        dropout_rate: float = 0.0,
    ) -> torch.Tensor:
        x = self.norm(h)
        messages = F.relu(x[src] + self.edge_encoder(edge_features)) * edge_mask[:, None]
        aggregated = torch.zeros_like(x).index_add_(0, dst, messages)
        hidden = self.mlp[1](self.mlp[0](x + aggregated))
        return h + self.mlp[2](dropout(hidden, dropout_rate, self.training))


class GINE(nn.Module):
    def __init__(self, hidden: int, num_layers: int, readout: str = "sum"):
        super().__init__()
        self.readout = readout
        self.node_encoder = nn.Linear(NODE_FEATURES, hidden)
        self.layers = nn.ModuleList(GINELayer(hidden) for _ in range(num_layers))
        self.norm_final = nn.LayerNorm(hidden)
        self.head = nn.Sequential(nn.Linear(hidden, hidden), nn.ReLU(), nn.Linear(hidden, 1))
        # Start by predicting the train mean (0 in standardised units; MAE about 0.8): with a
        # random last layer, Adam's first full-size steps overshoot.
        nn.init.zeros_(self.head[-1].weight)
        nn.init.zeros_(self.head[-1].bias)

    def forward(self, batch: Batch, dropout_rate: float = 0.0) -> torch.Tensor:
        """A batch of padded graphs -> (B,) predictions of the standardised target."""
        node_features, node_mask = batch["inputs"], batch["node_mask"]
        num_graphs = node_features.shape[0]
        # Flatten the graphs into one big graph of B * 9 nodes; edges index into it.
        offsets = torch.arange(num_graphs, device=node_features.device)[:, None] * MAX_NODES
        edge_index = batch["edge_index"].long()
        src = (edge_index[..., 0] + offsets).reshape(-1)
        dst = (edge_index[..., 1] + offsets).reshape(-1)
        edge_features = batch["edge_features"].reshape(src.shape[0], -1).float()
        edge_mask = batch["edge_mask"].reshape(-1).float()

        h = self.node_encoder(node_features.reshape(num_graphs * MAX_NODES, -1).float())
        for layer in self.layers:
            h = layer(h, src, dst, edge_features, edge_mask, dropout_rate)
        h = self.norm_final(h).reshape(num_graphs, MAX_NODES, -1)
        mask = node_mask.float()[..., None]
        pooled = (h * mask).sum(dim=1)
        if self.readout == "mean":
            pooled = pooled / mask.sum(dim=1).clamp(min=1.0)
        return self.head(dropout(pooled, dropout_rate, self.training)).squeeze(-1)


class Qm9TorchWorkload(Qm9Workload, TorchWorkload):
    def build_model(self) -> nn.Module:
        return GINE(int(self.options["hidden"]), int(self.options["num_layers"]), self.readout)


class Qm9MeanTorchWorkload(Qm9MeanWorkload, Qm9TorchWorkload):
    pass
