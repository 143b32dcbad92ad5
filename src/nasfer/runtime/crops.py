"""Face crops given directly to the classifier (no detection): the accepted shapes and dtypes, converted.

One contract (`as_crops`), used by `EmotionRecognizer.classify`: every accepted input becomes uint8
(N, S, S) grayscale crops at the model's size, the same conversion the detector path applies
(`cv2.cvtColor` RGB->GRAY, ITU-R BT.601 luma; `cv2.resize` INTER_AREA down, INTER_LINEAR up); anything
whose meaning is not certain is refused with an ImageError, never reinterpreted.
"""

from __future__ import annotations

from typing import Any, Sequence

import numpy as np

from ..errors import ImageError

#: Channel counts of a crop's trailing axis: gray, gray + alpha (PIL "LA"), colour, colour + alpha.
CHANNELS = (1, 2, 3, 4)


def _to_uint8(arr: np.ndarray) -> np.ndarray:
    """uint8 copy of an image array: uint8 as is, integers within 0..255 cast, floats within 0..1 x 255."""
    if arr.dtype == np.uint8:
        return arr
    if arr.size == 0:
        raise ImageError(f"empty crop of shape {arr.shape}")
    if arr.dtype == np.bool_:
        raise ImageError("boolean arrays are not images; give uint8 0..255 or float 0..1")
    if np.issubdtype(arr.dtype, np.integer):
        lo, hi = int(arr.min()), int(arr.max())
        if lo < 0 or hi > 255:
            raise ImageError(f"{arr.dtype} crop values must be within 0..255, got {lo}..{hi}")
        return arr.astype(np.uint8)
    if np.issubdtype(arr.dtype, np.floating):
        if not np.isfinite(arr).all():
            raise ImageError("float crop contains NaN or infinity")
        lo, hi = float(arr.min()), float(arr.max())
        if lo < 0.0 or hi > 1.0:
            raise ImageError(f"float crops must be within 0..1 (they are scaled by 255), got {lo:g}..{hi:g}; "
                             "for 0..255 values pass a uint8 array")
        return np.rint(arr * 255.0).astype(np.uint8)
    raise ImageError(f"cannot use a {arr.dtype} array as an image (give uint8 0..255 or float 0..1)")


def _one_crop(crop: Any, size: int, color: str) -> np.ndarray:
    """uint8 (size, size) gray crop from one array (H, W) / (H, W, 1|2|3|4), path, bytes or PIL image.

    C=2 is gray + alpha (what `np.array` gives for a PIL "LA" image) and C=4 colour + alpha: the alpha
    channel is dropped, as everywhere else in the runtime.
    """
    import cv2

    if isinstance(crop, np.ndarray):
        arr = _to_uint8(crop)
        if arr.ndim == 3 and arr.shape[2] in (1, 2):  # gray, or gray + alpha: keep the gray channel
            arr = arr[:, :, 0]
        if arr.ndim == 3 and arr.shape[2] in (3, 4):
            code = cv2.COLOR_BGR2GRAY if color == "bgr" else cv2.COLOR_RGB2GRAY
            arr = cv2.cvtColor(np.ascontiguousarray(arr[:, :, :3]), code)
        elif arr.ndim != 2:
            raise ImageError(f"a crop must be (H, W) gray, (H, W, 1|2) gray (+ alpha) or (H, W, 3|4) colour "
                             f"(+ alpha), got shape {crop.shape}")
        if min(arr.shape) < 1:
            raise ImageError(f"empty crop of shape {crop.shape}")
    else:
        from .api import load_image

        arr = cv2.cvtColor(load_image(crop), cv2.COLOR_RGB2GRAY)
    if arr.shape != (size, size):
        interp = cv2.INTER_AREA if max(arr.shape) > size else cv2.INTER_LINEAR
        arr = cv2.resize(np.ascontiguousarray(arr), (size, size), interpolation=interp)
    return arr


def as_crops(crops: Any, size: int, color: str = "rgb") -> np.ndarray:
    """uint8 (N, size, size) model-input crops from what `EmotionRecognizer.classify` accepts.

    Array shapes: (H, W) and (H, W, C) with C in {1, 2, 3, 4} are one crop (C=1 gray, 2 gray + alpha,
    3 colour, 4 colour + alpha; alpha is dropped); (N, H, W) with W not in {1, 2, 3, 4} is a batch of
    gray crops; (N, H, W, C) a batch of such crops. Lists and tuples hold one crop per item, of any
    sizes. ImageError for anything else (never reinterpreted).
    """
    if color not in ("rgb", "bgr"):
        raise ValueError(f"color must be 'rgb' or 'bgr', got {color!r}")
    if isinstance(crops, np.ndarray):
        shape = crops.shape
        if crops.ndim == 2 or (crops.ndim == 3 and shape[2] in CHANNELS):
            items: Sequence[Any] = [crops]
        elif crops.ndim == 3 or (crops.ndim == 4 and shape[3] in CHANNELS):
            if crops.ndim == 3 and crops.dtype == np.uint8 and shape[1:] == (size, size):
                return crops  # the fast path: already model input
            items = list(crops)
        else:
            raise ImageError(f"crops must be (H, W), (H, W, C), (N, H, W) or (N, H, W, C) with C in 1, 2, 3, 4 "
                             f"(gray, gray + alpha, colour, colour + alpha); got shape {shape}")
    elif isinstance(crops, (list, tuple)):
        items = crops
    else:
        items = [crops]  # one path, bytes or PIL image
    if not len(items):
        return np.zeros((0, size, size), np.uint8)
    return np.stack([_one_crop(c, size, color) for c in items])


__all__ = ["as_crops"]
