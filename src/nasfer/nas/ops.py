"""The search space's candidate operations, DARTS-style: `OPS[name](C, stride, affine) -> nn.Module`.

Every op maps (N, C, H, W) to (N, C, ceil(H/stride), ceil(W/stride)), so a cell can pick any op for
any edge. Convolutions are ReLU-conv-BN as in NASNet (the ReLU first, so the sum of two branches is
pre-activation), and separable convolutions are applied twice, as NASNet-A does. Pools carry no
weights and no BN, as in DARTS; at stride 2 `identity` becomes a factorized reduction (two offset
1x1 convolutions), the only way to halve the size without discarding half the pixels.
"""

from __future__ import annotations

from typing import Callable

import torch
import torch.nn.functional as F
from torch import nn


class ReLUConvBN(nn.Sequential):
    """ReLU -> conv (k x k, or a pair of 1 x k then k x 1 when `factorized`) -> BN."""

    def __init__(self, c_in: int, c_out: int, kernel: int, stride: int, affine: bool = True):
        super().__init__(
            nn.ReLU(inplace=False),
            nn.Conv2d(c_in, c_out, kernel, stride=stride, padding=kernel // 2, bias=False),
            nn.BatchNorm2d(c_out, affine=affine),
        )


class FactorizedConv(nn.Sequential):
    """ReLU -> 1 x k conv -> k x 1 conv -> BN: a k x k receptive field for 2k weights per channel pair."""

    def __init__(self, C: int, kernel: int, stride: int, affine: bool = True):
        pad = kernel // 2
        super().__init__(
            nn.ReLU(inplace=False),
            nn.Conv2d(C, C, (1, kernel), stride=(1, stride), padding=(0, pad), bias=False),
            nn.Conv2d(C, C, (kernel, 1), stride=(stride, 1), padding=(pad, 0), bias=False),
            nn.BatchNorm2d(C, affine=affine),
        )


class DilConv(nn.Sequential):
    """ReLU -> depthwise dilated conv -> pointwise conv -> BN."""

    def __init__(self, c_in: int, c_out: int, kernel: int, stride: int, dilation: int, affine: bool = True):
        super().__init__(
            nn.ReLU(inplace=False),
            nn.Conv2d(c_in, c_in, kernel, stride=stride, padding=dilation * (kernel // 2), dilation=dilation,
                      groups=c_in, bias=False),
            nn.Conv2d(c_in, c_out, 1, bias=False),
            nn.BatchNorm2d(c_out, affine=affine),
        )


class SepConv(nn.Sequential):
    """NASNet's separable conv: (ReLU, depthwise, pointwise, BN) twice; only the first one strides."""

    def __init__(self, c_in: int, c_out: int, kernel: int, stride: int, affine: bool = True):
        super().__init__(
            DilConv(c_in, c_in, kernel, stride, 1, affine),
            DilConv(c_in, c_out, kernel, 1, 1, affine),
        )


class FactorizedReduce(nn.Module):
    """Halve H and W with two stride-2 1x1 convs, one shifted by a pixel, concatenated -> BN.

    The shifted path pads right/bottom first (as NASNet's TF code does), so odd sizes give
    ceil(H/2) on both paths instead of a mismatch.
    """

    def __init__(self, c_in: int, c_out: int, affine: bool = True):
        super().__init__()
        if c_out % 2:
            raise ValueError(f"FactorizedReduce needs an even number of output channels, got {c_out}")
        self.relu = nn.ReLU(inplace=False)
        self.conv_1 = nn.Conv2d(c_in, c_out // 2, 1, stride=2, bias=False)
        self.conv_2 = nn.Conv2d(c_in, c_out // 2, 1, stride=2, bias=False)
        self.bn = nn.BatchNorm2d(c_out, affine=affine)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.relu(x)
        shifted = F.pad(x, (0, 1, 0, 1))[:, :, 1:, 1:]
        return self.bn(torch.cat([self.conv_1(x), self.conv_2(shifted)], dim=1))


def _identity(C: int, stride: int, affine: bool) -> nn.Module:
    return nn.Identity() if stride == 1 else FactorizedReduce(C, C, affine)


def _avg_pool(C: int, stride: int, affine: bool) -> nn.Module:
    return nn.AvgPool2d(3, stride=stride, padding=1, count_include_pad=False)


def _max_pool(kernel: int) -> Callable[[int, int, bool], nn.Module]:
    return lambda C, stride, affine: nn.MaxPool2d(kernel, stride=stride, padding=kernel // 2)


OpFactory = Callable[[int, int, bool], nn.Module]

#: name -> factory(C, stride, affine). The order is the controller's action order; do not reorder
#: (a trained controller's output layer indexes it).
OPS: dict[str, OpFactory] = {
    "identity": _identity,
    "conv_1x3_3x1": lambda C, stride, affine: FactorizedConv(C, 3, stride, affine),
    "conv_1x7_7x1": lambda C, stride, affine: FactorizedConv(C, 7, stride, affine),
    "dil_conv_3x3": lambda C, stride, affine: DilConv(C, C, 3, stride, 2, affine),
    "avg_pool_3x3": _avg_pool,
    "max_pool_3x3": _max_pool(3),
    "max_pool_5x5": _max_pool(5),
    "max_pool_7x7": _max_pool(7),
    "conv_1x1": lambda C, stride, affine: ReLUConvBN(C, C, 1, stride, affine),
    "conv_3x3": lambda C, stride, affine: ReLUConvBN(C, C, 3, stride, affine),
    "sep_conv_3x3": lambda C, stride, affine: SepConv(C, C, 3, stride, affine),
    "sep_conv_5x5": lambda C, stride, affine: SepConv(C, C, 5, stride, affine),
    "sep_conv_7x7": lambda C, stride, affine: SepConv(C, C, 7, stride, affine),
}

OP_NAMES: tuple[str, ...] = tuple(OPS)

def drop_path(x: torch.Tensor, drop_prob: float) -> torch.Tensor:
    """Zero whole samples of a branch with probability `drop_prob`, rescaling the rest (NASNet's ScheduledDropPath)."""
    if drop_prob <= 0.0:
        return x
    keep = 1.0 - drop_prob
    mask = torch.empty(x.shape[0], 1, 1, 1, device=x.device, dtype=x.dtype).bernoulli_(keep)
    return x / keep * mask
