"""NASNet networks for 48x48 grayscale faces, built from a genotype (NASNet's CIFAR layout).

stem (3x3 conv, 3F channels) -> N normal cells (F) -> reduction (2F) -> N normal (2F) -> reduction (4F)
-> N normal (4F) -> ReLU, global average pool, dropout, linear. Drop-path grows linearly with depth
(NASNet's ScheduledDropPath, depth part); the optional auxiliary head reads the second reduction
cell's output and is only computed in training, where the model returns `(logits, aux_logits)`.

Registered: `nasnet` (any genotype; NASNet-A by default) and `nasnet-a-mobile` share one size
(F=16, N=2, stride-2 stem: stacks at 24, 12 and 6 pixels, ~31M multiply-adds, ~330k parameters), so a
searched genotype and NASNet-A train at the same cost and compare fairly. `nasnet-a-large` is the
paper's large CIFAR setting (F=32, N=6, full-resolution stem, ~1.1G multiply-adds); ten times slower.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

from ..errors import ModelError
from ..nas.cells import Cell
from ..nas.genotype import NASNET_A, Genotype
from .registry import register_model


class AuxiliaryHead(nn.Sequential):
    """NASNet/DARTS auxiliary classifier, with an adaptive pool so any input size works."""

    def __init__(self, c_in: int, num_classes: int):
        super().__init__(
            nn.ReLU(inplace=False),
            nn.AdaptiveAvgPool2d(2),
            nn.Conv2d(c_in, 128, 1, bias=False),
            nn.BatchNorm2d(128),
            nn.ReLU(inplace=True),
            nn.Conv2d(128, 384, 2, bias=False),
            nn.BatchNorm2d(384),
            nn.ReLU(inplace=True),
            nn.Flatten(),
            nn.Linear(384, num_classes),
        )


class NASNet(nn.Module):
    def __init__(self, genotype: Genotype, F: int = 16, N: int = 2, num_classes: int = 7, in_channels: int = 1,
                 drop_path: float = 0.0, aux: bool = False, stem_stride: int = 1, dropout: float = 0.0):
        super().__init__()
        if F < 2 or F % 2:
            raise ModelError(f"NASNet needs an even filter count F >= 2 (factorized reductions halve it), got {F}")
        if N < 1:
            raise ModelError(f"NASNet needs N >= 1 normal cells per stack, got {N}")
        if not 0.0 <= drop_path < 1.0:
            raise ModelError(f"drop_path must be in [0, 1), got {drop_path}")
        self.genotype = genotype
        self.drop_path = float(drop_path)
        c_stem = 3 * F
        self.stem = nn.Sequential(
            nn.Conv2d(in_channels, c_stem, 3, stride=stem_stride, padding=1, bias=False),
            nn.BatchNorm2d(c_stem),
        )
        self.cells = nn.ModuleList()
        c_pp, c_p, reduction_prev = c_stem, c_stem, False
        self.aux_index = -1
        for stack in range(3):
            C = F * 2 ** stack
            kinds = ([True] if stack else []) + [False] * N
            for reduction in kinds:
                cell = Cell(genotype.cell("reduction" if reduction else "normal"), c_pp, c_p, C,
                            reduction=reduction, reduction_prev=reduction_prev)
                self.cells.append(cell)
                c_pp, c_p, reduction_prev = c_p, cell.multiplier * C, reduction
                if reduction and stack == 2:
                    self.aux_index = len(self.cells) - 1
                    c_aux = c_p
        self.aux_head = AuxiliaryHead(c_aux, num_classes) if aux else None
        self.head = nn.Sequential(nn.ReLU(inplace=False), nn.AdaptiveAvgPool2d(1), nn.Flatten(),
                                  nn.Dropout(dropout), nn.Linear(c_p, num_classes))

    def forward(self, x: torch.Tensor) -> torch.Tensor | tuple[torch.Tensor, torch.Tensor]:
        s0 = s1 = self.stem(x)
        aux_logits = None
        n = len(self.cells)
        for i, cell in enumerate(self.cells):
            s0, s1 = s1, cell(s0, s1, self.drop_path * (i + 1) / n)
            if i == self.aux_index and self.aux_head is not None and self.training:
                aux_logits = self.aux_head(s1)
        logits = self.head(s1)
        return (logits, aux_logits) if aux_logits is not None else logits


def _genotype_of(value: Any) -> Genotype:
    if value is None:
        return NASNET_A
    if isinstance(value, Genotype):
        return value
    if isinstance(value, dict):
        return Genotype.from_dict(value)
    raise ModelError(f"genotype must be a Genotype or its dict (Genotype.load(path).to_dict()), got {type(value).__name__}")


@register_model
def nasnet(num_classes: int = 7, in_channels: int = 1, genotype: Genotype | dict | None = None, F: int = 16,
           N: int = 2, drop_path: float = 0.0, aux: bool = False, stem_stride: int = 2, dropout: float = 0.0) -> NASNet:
    """A NASNet from any genotype (NASNet-A when none is given)."""
    return NASNet(_genotype_of(genotype), F=F, N=N, num_classes=num_classes, in_channels=in_channels,
                  drop_path=drop_path, aux=aux, stem_stride=stem_stride, dropout=dropout)


@register_model(name="nasnet-a-mobile")
def nasnet_a_mobile(num_classes: int = 7, in_channels: int = 1, F: int = 16, N: int = 2, drop_path: float = 0.0,
                    aux: bool = False, stem_stride: int = 2, dropout: float = 0.0) -> NASNet:
    """NASNet-A sized for fast CPU inference on 48x48 faces."""
    return NASNet(NASNET_A, F=F, N=N, num_classes=num_classes, in_channels=in_channels, drop_path=drop_path,
                  aux=aux, stem_stride=stem_stride, dropout=dropout)


@register_model(name="nasnet-a-large")
def nasnet_a_large(num_classes: int = 7, in_channels: int = 1, F: int = 32, N: int = 6, drop_path: float = 0.0,
                   aux: bool = False, stem_stride: int = 1, dropout: float = 0.0) -> NASNet:
    """NASNet-A in the paper's large CIFAR setting (6@768: N = 6, F = 32) at full 48x48 resolution."""
    return NASNet(NASNET_A, F=F, N=N, num_classes=num_classes, in_channels=in_channels, drop_path=drop_path,
                  aux=aux, stem_stride=stem_stride, dropout=dropout)
