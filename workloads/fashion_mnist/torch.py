"""Fashion-MNIST in PyTorch: a small ResNet (GroupNorm, so the model has no batch statistics)."""

from __future__ import annotations

import torch
from torch import nn

from algoperf.frameworks.torch import TorchWorkload
from algoperf.frameworks.torch.workload import dropout

from .workload import FashionMnistGeluWorkload, FashionMnistWorkload

ACTIVATIONS = {"relu": nn.ReLU, "gelu": lambda: nn.GELU(approximate="tanh")}


def conv_norm(in_ch: int, out_ch: int, stride: int = 1) -> list[nn.Module]:
    return [
        nn.Conv2d(in_ch, out_ch, 3, stride=stride, padding=1, bias=False),
        nn.GroupNorm(num_groups=8, num_channels=out_ch),
    ]


class ResidualBlock(nn.Module):
    def __init__(self, channels: int, activation: str):
        super().__init__()
        self.body = nn.Sequential(
            *conv_norm(channels, channels),
            ACTIVATIONS[activation](),
            *conv_norm(channels, channels),
        )
        self.act = ACTIVATIONS[activation]()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.act(x + self.body(x))


class SmallResNet(nn.Module):
    """stem (stride `stem_stride`: 2 halves every feature map) -> [residual block -> strided
    conv] per stage -> global average pool -> dropout (training only, at the call's
    `dropout_rate`) -> linear."""

    def __init__(self, channels: tuple[int, ...], num_classes: int, activation: str, stem_stride: int = 1):
        super().__init__()
        layers: list[nn.Module] = [*conv_norm(1, channels[0], stem_stride), ACTIVATIONS[activation]()]
        for i, ch in enumerate(channels):
            layers.append(ResidualBlock(ch, activation))
            if i + 1 < len(channels):
                layers += [*conv_norm(ch, channels[i + 1], stride=2), ACTIVATIONS[activation]()]
        self.features = nn.Sequential(*layers)
        self.head = nn.Linear(channels[-1], num_classes)

    def forward(self, x: torch.Tensor, dropout_rate: float = 0.0) -> torch.Tensor:
        pooled = self.features(x).mean(dim=(2, 3))
        return self.head(dropout(pooled, dropout_rate, self.training))


class FashionMnistTorchWorkload(FashionMnistWorkload, TorchWorkload):
    def build_model(self) -> nn.Module:
        return SmallResNet(
            tuple(self.options["channels"]),
            self.num_classes,
            self.activation,
            stem_stride=int(self.options.get("stem_stride", 1)),
        )


class FashionMnistGeluTorchWorkload(FashionMnistGeluWorkload, FashionMnistTorchWorkload):
    pass
