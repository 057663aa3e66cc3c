"""Shakespeare in PyTorch: a decoder-only character Transformer, readable top to bottom.

token + learned position embeddings -> N blocks (causal self-attention with separate q, k, v,
out projections, then a GELU MLP; pre-norm LayerNorm, or post-norm in the variant) -> LayerNorm
(pre-norm only) -> untied linear head over the 84 characters.

Dropout (training only, at the `dropout_rate` the forward pass is called with): on the
embedding sum, and on each residual branch (attention output, MLP output) before its add.
"""

from __future__ import annotations

import math

import torch
from torch import nn
from torch.nn import functional as F

from algoperf.frameworks.torch import TorchWorkload
from algoperf.frameworks.torch.workload import dropout

from .workload import ShakespearePostNormWorkload, ShakespeareWorkload


class CausalSelfAttention(nn.Module):
    """Multi-head causal attention. No biases, so every attention parameter has an exact type."""

    def __init__(self, d_model: int, num_heads: int):
        super().__init__()
        self.num_heads = num_heads
        self.q = nn.Linear(d_model, d_model, bias=False)
        self.k = nn.Linear(d_model, d_model, bias=False)
        self.v = nn.Linear(d_model, d_model, bias=False)
        self.out = nn.Linear(d_model, d_model, bias=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        batch, length, d_model = x.shape

        def heads(t: torch.Tensor) -> torch.Tensor:  # (B, T, C) -> (B, heads, T, C / heads)
            return t.view(batch, length, self.num_heads, d_model // self.num_heads).transpose(1, 2)

        y = F.scaled_dot_product_attention(
            heads(self.q(x)), heads(self.k(x)), heads(self.v(x)), is_causal=True
        )
        return self.out(y.transpose(1, 2).reshape(batch, length, d_model))


class MLP(nn.Module):
    def __init__(self, d_model: int, activation: str):
        super().__init__()
        self.fc_in = nn.Linear(d_model, 4 * d_model)
        self.act = nn.GELU(approximate="tanh") if activation == "gelu" else nn.ReLU()
        self.fc_out = nn.Linear(4 * d_model, d_model)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc_out(self.act(self.fc_in(x)))


class Block(nn.Module):
    def __init__(self, d_model: int, num_heads: int, pre_norm: bool, activation: str):
        super().__init__()
        self.pre_norm = pre_norm
        self.norm_attn = nn.LayerNorm(d_model)
        self.attn = CausalSelfAttention(d_model, num_heads)
        self.norm_mlp = nn.LayerNorm(d_model)
        self.mlp = MLP(d_model, activation)

    def forward(self, x: torch.Tensor, dropout_rate: float = 0.0) -> torch.Tensor:
        def drop(branch: torch.Tensor) -> torch.Tensor:
            return dropout(branch, dropout_rate, self.training)

        if self.pre_norm:
            x = x + drop(self.attn(self.norm_attn(x)))
            return x + drop(self.mlp(self.norm_mlp(x)))
        x = self.norm_attn(x + drop(self.attn(x)))
        return self.norm_mlp(x + drop(self.mlp(x)))


class CharTransformer(nn.Module):
    def __init__(
        self,
        vocab_size: int,
        context: int,
        d_model: int,
        num_layers: int,
        num_heads: int,
        pre_norm: bool = True,
        activation: str = "gelu",
    ):
        super().__init__()
        self.token_embedding = nn.Embedding(vocab_size, d_model)
        self.position_embedding = nn.Embedding(context, d_model)
        self.blocks = nn.ModuleList(
            Block(d_model, num_heads, pre_norm, activation) for _ in range(num_layers)
        )
        # Post-norm blocks already end in a LayerNorm.
        self.norm_final = nn.LayerNorm(d_model) if pre_norm else nn.Identity()
        self.head = nn.Linear(d_model, vocab_size)
        self._init_weights(num_layers)

    def _init_weights(self, num_layers: int) -> None:
        """GPT-2 style: N(0, 0.02), residual projections scaled by 1/sqrt(2 layers), zero
        biases; the head starts near zero so the initial loss is about ln(vocab_size)."""
        for name, module in self.named_modules():
            if isinstance(module, (nn.Linear, nn.Embedding)):
                std = 0.02
                if name.endswith(("attn.out", "mlp.fc_out")):
                    std /= math.sqrt(2 * num_layers)
                nn.init.normal_(module.weight, std=std)
            if isinstance(module, nn.Linear) and module.bias is not None:
                nn.init.zeros_(module.bias)

    def forward(self, tokens: torch.Tensor, dropout_rate: float = 0.0) -> torch.Tensor:
        """(B, T) token ids -> (B, T, vocab_size) logits for the next character."""
        positions = torch.arange(tokens.shape[1], device=tokens.device)
        x = self.token_embedding(tokens.long()) + self.position_embedding(positions)
        x = dropout(x, dropout_rate, self.training)
        for block in self.blocks:
            x = block(x, dropout_rate)
        return self.head(self.norm_final(x))


class ShakespeareTorchWorkload(ShakespeareWorkload, TorchWorkload):
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


class ShakespearePostNormTorchWorkload(ShakespearePostNormWorkload, ShakespeareTorchWorkload):
    pass
