"""The one definition of how a face crop becomes model input, shared by training and inference.

Training (torch) and the ONNX engine (numpy) both call `normalize`, so the two can never drift:
the spec lives in the model card as a `Preprocessing` value.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

import numpy as np


@dataclass(frozen=True)
class Preprocessing:
    """Input contract of a model: square grayscale crops, scaled to [0,1], then standardised."""

    size: int = 48
    channels: int = 1
    mean: float = 0.5
    std: float = 0.25

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> "Preprocessing":
        known = {k: data[k] for k in ("size", "channels", "mean", "std") if k in data}
        return cls(**known)


def normalize(images: np.ndarray, spec: Preprocessing) -> np.ndarray:
    """uint8 crops (N,H,W) or (H,W) -> float32 (N,1,H,W) model input.

    Works on numpy arrays; torch tensors go through `normalize_tensor` with identical arithmetic.
    """
    arr = np.asarray(images)
    if arr.ndim == 2:
        arr = arr[None]
    if arr.ndim != 3:
        raise ValueError(f"expected grayscale crops of shape (N, H, W), got {arr.shape}")
    if arr.shape[1:] != (spec.size, spec.size):
        raise ValueError(f"expected {spec.size}x{spec.size} crops, got {arr.shape[1]}x{arr.shape[2]}")
    out = arr.astype(np.float32) * np.float32(1.0 / 255.0)
    out = (out - np.float32(spec.mean)) / np.float32(spec.std)
    return out[:, None, :, :]


def normalize_tensor(images, spec: Preprocessing):
    """Torch twin of `normalize` for uint8 tensors (N,H,W) or (N,1,H,W); same arithmetic, same dtype."""
    x = images
    if x.dim() == 3:
        x = x.unsqueeze(1)
    x = x.float() * (1.0 / 255.0)
    return (x - spec.mean) / spec.std
