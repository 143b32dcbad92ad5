"""Batch augmentation on tensors: one affine warp (crop-shift, flip, rotation, zoom), cutout and random erasing.

Done on whole batches with a single `grid_sample`, so augmentation costs little next to the
forward pass on a 2-core CPU, and is driven by an explicit torch.Generator so a resumed run
draws exactly the same augmentations as an uninterrupted one.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F


@dataclass(frozen=True)
class Augment:
    """Random label-preserving transforms of a batch of face crops, drawn from an explicit generator.

    crop_padding: max shift in pixels (a padded random crop); flip: mirror half the images; rotation: max
    degrees; scale: max zoom fraction; cutout: square size in pixels (DeVries & Taylor 2017, 0: off);
    random_erasing: probability per image (Zhong et al. 2017, 0: off).
    """

    crop_padding: int = 4
    flip: bool = True
    rotation: float = 10.0
    scale: float = 0.1
    cutout: int = 0
    random_erasing: float = 0.0

    @property
    def is_identity(self) -> bool:
        return not (self.crop_padding or self.flip or self.rotation or self.scale or self.cutout
                    or self.random_erasing)

    def __call__(self, images: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
        """uint8 or float batch (N,C,H,W) in 0..255 -> augmented float batch in 0..255."""
        return self.apply(images, generator)[0]

    def apply(self, images: torch.Tensor, generator: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
        """(augmented float batch (N,C,H,W) in 0..255, bool (N,) which images were mirrored left-right).

        The flip decisions let a caller pair each image with a target computed on the mirror image
        (distillation from a teacher's cached outputs). Draws exactly what `__call__` draws.
        """
        x = images.float()
        n, _, h, w = x.shape
        if self.is_identity:
            return x, torch.zeros(n, dtype=torch.bool)

        def uniform(low: float, high: float) -> torch.Tensor:
            return torch.rand(n, generator=generator) * (high - low) + low

        angle = uniform(-self.rotation, self.rotation) * (math.pi / 180.0)
        zoom = uniform(1.0 - self.scale, 1.0 + self.scale)
        flip = torch.where(torch.rand(n, generator=generator) < 0.5, -1.0, 1.0) if self.flip else torch.ones(n)
        # Translations in normalised coordinates: `crop_padding` pixels of shift, as a padded random crop.
        tx = uniform(-1.0, 1.0) * (2.0 * self.crop_padding / w)
        ty = uniform(-1.0, 1.0) * (2.0 * self.crop_padding / h)
        cos, sin = torch.cos(angle) / zoom, torch.sin(angle) / zoom
        theta = torch.stack(
            [torch.stack([cos * flip, -sin, tx], 1), torch.stack([sin * flip, cos, ty], 1)], 1
        )
        grid = F.affine_grid(theta, list(x.shape), align_corners=False)
        x = F.grid_sample(x, grid, mode="bilinear", padding_mode="border", align_corners=False)
        if self.cutout:
            x = cutout(x, self.cutout, generator)
        if self.random_erasing:
            x = random_erasing(x, self.random_erasing, generator)
        return x, flip < 0


def cutout(x: torch.Tensor, size: int, generator: torch.Generator) -> torch.Tensor:
    """Zero one random size x size square per image (DeVries & Taylor, 2017)."""
    n, _, h, w = x.shape
    cy = torch.randint(0, h, (n,), generator=generator)
    cx = torch.randint(0, w, (n,), generator=generator)
    ys = torch.arange(h).view(1, h, 1)
    xs = torch.arange(w).view(1, 1, w)
    half = size // 2
    inside = ((ys - cy.view(n, 1, 1)).abs() <= half) & ((xs - cx.view(n, 1, 1)).abs() <= half)
    return x.masked_fill(inside.unsqueeze(1), 0.0)


def random_erasing(x: torch.Tensor, p: float, generator: torch.Generator, area: tuple[float, float] = (0.02, 0.4),
                   ratio: tuple[float, float] = (0.3, 3.3)) -> torch.Tensor:
    """Random erasing (Zhong et al., 2017, "Random Erasing Data Augmentation", Alg. 1).

    With probability `p` per image, one rectangle covering a uniform fraction `area` of the image, with
    aspect ratio (height/width) log-uniform in `ratio`, is filled with uniform noise in 0..255.
    x: float (N, C, H, W) in 0..255; returns a new tensor of the same shape and dtype. Deterministic for a
    given generator state.
    """
    n, c, h, w = x.shape
    apply = torch.rand(n, generator=generator) < p
    target = (torch.rand(n, generator=generator) * (area[1] - area[0]) + area[0]) * (h * w)
    log_lo, log_hi = math.log(ratio[0]), math.log(ratio[1])
    aspect = torch.exp(torch.rand(n, generator=generator) * (log_hi - log_lo) + log_lo)
    eh = torch.sqrt(target * aspect).round().clamp(1, h)
    ew = torch.sqrt(target / aspect).round().clamp(1, w)
    y0 = (torch.rand(n, generator=generator) * (h - eh + 1)).floor()
    x0 = (torch.rand(n, generator=generator) * (w - ew + 1)).floor()
    ys = torch.arange(h, dtype=x.dtype).view(1, h, 1)
    xs = torch.arange(w, dtype=x.dtype).view(1, 1, w)
    inside = ((ys >= y0.view(n, 1, 1)) & (ys < (y0 + eh).view(n, 1, 1))
              & (xs >= x0.view(n, 1, 1)) & (xs < (x0 + ew).view(n, 1, 1)) & apply.view(n, 1, 1))
    noise = torch.rand(x.shape, generator=generator, dtype=x.dtype) * 255.0
    return torch.where(inside.unsqueeze(1), noise, x)
