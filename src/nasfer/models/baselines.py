"""Hand-designed baselines for 48x48 grayscale faces, and parameter/FLOP counting.

- `vgg`: four blocks of two 3x3 convs (widths w, 2w, 4w, 8w); the strongest simple CPU baseline.
- `resnet18`: ResNet-18 layout (2,2,2,2 basic blocks), 3x3 stem without max-pool for small inputs.
- `mini-xception`: Arriaga et al. 2017, the model behind the `fer` package (about 60k parameters).
"""

from __future__ import annotations

import torch
from torch import nn

from .registry import register_model


def conv_bn_relu(c_in: int, c_out: int, stride: int = 1) -> nn.Sequential:
    return nn.Sequential(
        nn.Conv2d(c_in, c_out, 3, stride=stride, padding=1, bias=False),
        nn.BatchNorm2d(c_out),
        nn.ReLU(inplace=True),
    )


class ClassifierHead(nn.Sequential):
    def __init__(self, c_in: int, num_classes: int, dropout: float):
        super().__init__(nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Dropout(dropout), nn.Linear(c_in, num_classes))


class VGG(nn.Module):
    def __init__(self, num_classes: int = 7, in_channels: int = 1, width: int = 32, dropout: float = 0.3):
        super().__init__()
        widths = [width, width * 2, width * 4, width * 8]
        layers: list[nn.Module] = []
        c = in_channels
        for w in widths:
            layers += [conv_bn_relu(c, w), conv_bn_relu(w, w), nn.MaxPool2d(2)]
            c = w
        self.features = nn.Sequential(*layers)
        self.head = ClassifierHead(c, num_classes, dropout)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.features(x))


class BasicBlock(nn.Module):
    def __init__(self, c_in: int, c_out: int, stride: int):
        super().__init__()
        self.body = nn.Sequential(
            conv_bn_relu(c_in, c_out, stride),
            nn.Conv2d(c_out, c_out, 3, padding=1, bias=False),
            nn.BatchNorm2d(c_out),
        )
        self.shortcut = (
            nn.Identity()
            if stride == 1 and c_in == c_out
            else nn.Sequential(nn.Conv2d(c_in, c_out, 1, stride=stride, bias=False), nn.BatchNorm2d(c_out))
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.relu(self.body(x) + self.shortcut(x))


class ResNet18(nn.Module):
    def __init__(self, num_classes: int = 7, in_channels: int = 1, width: int = 32, dropout: float = 0.2):
        super().__init__()
        self.stem = conv_bn_relu(in_channels, width)
        blocks: list[nn.Module] = []
        c = width
        for i, w in enumerate([width, width * 2, width * 4, width * 8]):
            stride = 1 if i == 0 else 2
            blocks += [BasicBlock(c, w, stride), BasicBlock(w, w, 1)]
            c = w
        self.blocks = nn.Sequential(*blocks)
        self.head = ClassifierHead(c, num_classes, dropout)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.blocks(self.stem(x)))


class SeparableConv(nn.Sequential):
    def __init__(self, c_in: int, c_out: int):
        super().__init__(
            nn.Conv2d(c_in, c_in, 3, padding=1, groups=c_in, bias=False),
            nn.Conv2d(c_in, c_out, 1, bias=False),
            nn.BatchNorm2d(c_out),
        )


class XceptionModule(nn.Module):
    """Two separable convs and a stride-2 pool, plus a strided 1x1 residual (mini-Xception)."""

    def __init__(self, c_in: int, c_out: int):
        super().__init__()
        self.residual = nn.Sequential(nn.Conv2d(c_in, c_out, 1, stride=2, bias=False), nn.BatchNorm2d(c_out))
        self.body = nn.Sequential(
            SeparableConv(c_in, c_out), nn.ReLU(inplace=True), SeparableConv(c_out, c_out),
            nn.MaxPool2d(3, stride=2, padding=1),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.body(x) + self.residual(x)


class MiniXception(nn.Module):
    def __init__(self, num_classes: int = 7, in_channels: int = 1, width: int = 8):
        super().__init__()
        self.stem = nn.Sequential(conv_bn_relu(in_channels, width), conv_bn_relu(width, width))
        modules, c = [], width
        for w in [width * 2, width * 4, width * 8, width * 16]:
            modules.append(XceptionModule(c, w))
            c = w
        self.modules_ = nn.Sequential(*modules)
        self.classifier = nn.Conv2d(c, num_classes, 3, padding=1)
        self.pool = nn.Sequential(nn.AdaptiveAvgPool2d(1), nn.Flatten())

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.pool(self.classifier(self.modules_(self.stem(x))))


@register_model
def vgg(num_classes: int = 7, in_channels: int = 1, width: int = 32, dropout: float = 0.3) -> nn.Module:
    return VGG(num_classes, in_channels, width, dropout)


@register_model
def resnet18(num_classes: int = 7, in_channels: int = 1, width: int = 32, dropout: float = 0.2) -> nn.Module:
    return ResNet18(num_classes, in_channels, width, dropout)


@register_model(name="mini-xception")
def mini_xception(num_classes: int = 7, in_channels: int = 1, width: int = 8) -> nn.Module:
    return MiniXception(num_classes, in_channels, width)


def count_params(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


def count_flops(model: nn.Module, size: int = 48, in_channels: int | None = None) -> int:
    """Multiply-adds of one forward pass on a single (C, size, size) image (convs and linears)."""
    if in_channels is None:
        first_conv = next(m for m in model.modules() if isinstance(m, nn.Conv2d))
        in_channels = first_conv.in_channels
    total = 0

    def hook(module: nn.Module, _inputs, output) -> None:
        nonlocal total
        if isinstance(module, nn.Conv2d):
            kh, kw = module.kernel_size
            total += output.numel() * (module.in_channels // module.groups) * kh * kw
        elif isinstance(module, nn.Linear):
            total += output.numel() * module.in_features

    handles = [m.register_forward_hook(hook) for m in model.modules() if isinstance(m, (nn.Conv2d, nn.Linear))]
    was_training = model.training
    model.eval()
    try:
        with torch.no_grad():
            model(torch.zeros(1, in_channels, size, size))
    finally:
        for h in handles:
            h.remove()
        model.train(was_training)
    return int(total)
