"""`macro`: a network built from a macro-space spec (`nasfer.nas.macro`), registered for `nasfer train`.

`create_model("macro", spec={...})` (default: the VGG-16 point) maps (N, in_channels, S, S) float32 to logits (N, num_classes) for
any S >= 8 (global average pooling; max-pools use ceil mode so small proxies never reach size 0).
Layer order and shapes follow `vgg` and `mini-xception` exactly where the spec describes them, so
their weights load into the equivalent macro network.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

from ..nas.cells import Cell
from ..nas.macro import check_spec, even
from .baselines import ClassifierHead, conv_bn_relu
from .registry import register_model


class SepConv(nn.Sequential):
    """Depthwise k x k conv -> pointwise 1x1 conv -> BN (mini-Xception's SeparableConv for k = 3)."""

    def __init__(self, c_in: int, c_out: int, kernel: int):
        super().__init__(
            nn.Conv2d(c_in, c_in, kernel, padding=kernel // 2, groups=c_in, bias=False),
            nn.Conv2d(c_in, c_out, 1, bias=False),
            nn.BatchNorm2d(c_out),
        )


def _project(c_in: int, c_out: int) -> nn.Module:
    if c_in == c_out:
        return nn.Identity()
    return nn.Sequential(nn.Conv2d(c_in, c_out, 1, bias=False), nn.BatchNorm2d(c_out))


class CellPair(nn.Module):
    """A NASNet cell fed (x, x) (or the previous pair), projected to `c_out` channels."""

    def __init__(self, blocks, c_in: int, c_out: int, reduction: bool):
        super().__init__()
        from ..nas.genotype import concat_states

        multiplier = len(concat_states([tuple(b) for b in blocks]))
        C = even(c_out / multiplier)
        self.cell = Cell([tuple(b) for b in blocks], c_in, c_in, C, reduction=reduction, reduction_prev=False)
        self.proj = _project(self.cell.multiplier * C, c_out)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.proj(self.cell(x, x))


def downsample(kind: str, width: int, block: str, reduction_cell) -> nn.Module:
    if kind == "max_pool":
        return nn.MaxPool2d(3, stride=2, padding=1) if block == "sep" else nn.MaxPool2d(2, ceil_mode=True)
    if kind == "strided_conv":
        return conv_bn_relu(width, width, stride=2)
    return CellPair(reduction_cell, width, width, reduction=True)


class Stage(nn.Module):
    """`depth` blocks of one type at `width` channels, then downsampling (sep stages add a residual)."""

    def __init__(self, stage: dict[str, Any], c_in: int, normal_cell, reduction_cell):
        super().__init__()
        block, depth, width = stage["block"], stage["depth"], stage["width"]
        self.residual = None
        layers: list[nn.Module] = []
        if block == "plain":
            layers = [conv_bn_relu(c_in if j == 0 else width, width) for j in range(depth)]
        elif block == "sep":
            # registered before the body, as in mini-Xception, so parameter order matches it
            self.residual = nn.Sequential(nn.Conv2d(c_in, width, 1, stride=2, bias=False), nn.BatchNorm2d(width))
            for j in range(depth):
                if j:
                    layers.append(nn.ReLU(inplace=True))
                layers.append(SepConv(c_in if j == 0 else width, width, stage["kernel"]))
        else:
            layers = [CellPair(normal_cell, c_in if j == 0 else width, width, reduction=False) for j in range(depth)]
        layers.append(downsample(stage["down"], width, block, reduction_cell))
        self.body = nn.Sequential(*layers)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.body(x)
        return out if self.residual is None else out + self.residual(x)


class ConvHead(nn.Sequential):
    """Dropout -> 3x3 conv to the classes -> global average pool (mini-Xception's classifier)."""

    def __init__(self, c_in: int, num_classes: int, dropout: float):
        super().__init__(nn.Dropout(dropout), nn.Conv2d(c_in, num_classes, 3, padding=1),
                         nn.AdaptiveAvgPool2d(1), nn.Flatten())


class MacroNet(nn.Module):
    def __init__(self, spec: dict[str, Any], num_classes: int = 7, in_channels: int = 1, width: int = 0):
        super().__init__()
        spec = check_spec(spec)
        if width:  # scale every width so the stem gets `width` channels (nasfer train --width)
            scale = width / spec["stem"]["width"]
            spec = check_spec({**spec, "stem": {**spec["stem"], "width": int(width)},
                               "stages": [{**s, "width": even(s["width"] * scale)} for s in spec["stages"]]})
        self.spec = spec
        stem = spec["stem"]
        self.stem = nn.Sequential(*[conv_bn_relu(in_channels if j == 0 else stem["width"], stem["width"],
                                                 stride=stem["stride"] if j == 0 else 1) for j in range(stem["convs"])])
        c = stem["width"]
        stages = []
        for stage in spec["stages"]:
            stages.append(Stage(stage, c, spec.get("normal_cell"), spec.get("reduction_cell")))
            c = stage["width"]
        self.stages = nn.Sequential(*stages)
        head = spec["head"]
        self.head = (ClassifierHead(c, num_classes, head["dropout"]) if head["kind"] == "linear"
                     else ConvHead(c, num_classes, head["dropout"]))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.stages(self.stem(x)))


@register_model
def macro(spec: dict[str, Any] | None = None, num_classes: int = 7, in_channels: int = 1, width: int = 0) -> MacroNet:
    """A network from a macro-space spec (`nasfer.nas.macro`; `nasfer train --genotype SPEC.json`);
    without one, the space's VGG-16 point (`vgg_spec(16)`, the shipped fast model's layout).
    `width` rescales every stage so the stem has that many channels."""
    from ..nas.macro import vgg_spec

    return MacroNet(spec if spec is not None else vgg_spec(16), num_classes=num_classes, in_channels=in_channels,
                    width=width)
