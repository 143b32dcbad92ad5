"""Test-time augmentation (TTA): flip and ten-crop views of uint8 face crops, and what a model has built in.

Ten-crop (Krizhevsky et al. 2012; used on FER2013 by Pramerdorfer & Kampel 2016 and Khaireddin & Chen
2021) averages the probabilities of five crops, the four corners and the centre, and of their
mirror images. Here the crops are SHIFTED VIEWS at the input's own size, not smaller crops resized:
the S x S crop is padded by `padding` pixels on every side by repeating its edge pixels, and the five
S x S windows are cut at the corners and the centre of the padded image (the centre window is the
crop itself). That is exactly the family of images the training augmentation shows the model (random
shifts of up to `crop_padding` = 4 px with border replication, `nasfer.data.augment.Augment`), so no
view is out of distribution; true crops of a 48 px face resized back to 48 px would zoom by 1.2x,
twice the training's scale jitter (+-10%), and cut off part of the mouth or brows.

One definition of the views: `crop_offsets` gives the windows; `ten_crop_views` (numpy, for
`nasfer evaluate`) and `TenCropProbabilities` (torch, built into an exported graph by
`nasfer export --ten-crop`) both use it, and a test checks that they agree.
"""

from __future__ import annotations

import sys
from typing import Any, Callable

import numpy as np

from .errors import ModelError

#: Pixels of shift on each side; the training augmentation's default `crop_padding`.
TEN_CROP_PADDING = 4

#: The TTA kinds a model card's `onnx.tta` may name (True in older cards means "flip").
KINDS = ("flip", "ten-crop")


def crop_offsets(padding: int = TEN_CROP_PADDING) -> list[tuple[int, int]]:
    """(row, col) of the five S x S windows in the crop padded by `padding`: 4 corners, then the centre."""
    if padding < 0:
        raise ValueError(f"padding must be >= 0, got {padding}")
    p2 = 2 * padding
    return [(0, 0), (0, p2), (p2, 0), (p2, p2), (padding, padding)]


def five_crop_views(images: np.ndarray, padding: int = TEN_CROP_PADDING) -> np.ndarray:
    """uint8 (N, S, S) -> uint8 (5, N, S, S): the corner and centre windows of the edge-padded crops."""
    images = np.asarray(images)
    if images.ndim != 3:
        raise ValueError(f"expected crops (N, S, S), got shape {images.shape}")
    _, h, w = images.shape
    padded = np.pad(images, ((0, 0), (padding, padding), (padding, padding)), mode="edge")
    return np.stack([padded[:, r:r + h, c:c + w] for r, c in crop_offsets(padding)])


def ten_crop_views(images: np.ndarray, padding: int = TEN_CROP_PADDING) -> np.ndarray:
    """uint8 (N, S, S) -> uint8 (10, N, S, S): the five windows, then their horizontal mirror images."""
    five = five_crop_views(images, padding)
    return np.concatenate([five, five[:, :, :, ::-1]])


def averaged(predict: Callable[[np.ndarray], np.ndarray], views: np.ndarray) -> np.ndarray:
    """Mean probabilities float64 (N, K) of `predict` over views (V, N, S, S)."""
    return np.mean([np.asarray(predict(np.ascontiguousarray(v)), dtype=np.float64) for v in views], axis=0)


def predict_batches(predict: Callable[[np.ndarray], np.ndarray], images: np.ndarray, batch_size: int,
                    tta: bool | str | None = False, progress: bool = False) -> np.ndarray:
    """Probabilities float64 (N, K) for uint8 crops (N, S, S), batch by batch, with optional TTA.

    tta: False/None (one pass), True or "flip" (mean with the mirrored batch), "ten-crop" (mean over
    `nasfer.tta.ten_crop_views`) or "five-crop" (the five windows without mirrors, for a graph that mirrors
    itself). ValueError for a batch size below 1 or an unknown kind.
    """
    from tqdm import tqdm

    if batch_size < 1:
        raise ValueError(f"--batch-size must be at least 1, got {batch_size}")
    kind = "flip" if tta is True else (tta or None)
    views_of = {None: lambda b: b[None], "flip": lambda b: np.stack([b, b[:, :, ::-1]]),
                "ten-crop": ten_crop_views, "five-crop": five_crop_views}
    if kind not in views_of:
        raise ValueError(f"unknown TTA {tta!r}; expected one of {', '.join(k for k in views_of if k)}")
    out = []
    with tqdm(total=len(images), unit="img", desc="evaluate", file=sys.stderr, disable=not progress,
              dynamic_ncols=True) as bar:
        for start in range(0, len(images), batch_size):
            batch = np.ascontiguousarray(images[start:start + batch_size])
            out.append(averaged(predict, views_of[kind](batch)))
            bar.update(len(batch))
    return np.concatenate(out) if out else np.zeros((0, 0))


def tta_plan(model: Any, flip: bool, ten_crop: bool) -> tuple[str | None, list[str]]:
    """The views evaluation adds to what the model's graph already does: (predict_batches kind, notes).

    model: anything with `name`, `path` and `builtin_tta` (`nasfer.evaluate.LoadedModel`).

    ModelError for TTA the graph already does (the same answer at twice the cost or more) and for
    --tta with --ten-crop (ten-crop includes the mirror images).
    """
    if flip and ten_crop:
        raise ModelError("--tta and --ten-crop together: ten-crop already averages the mirror images; choose one")
    inside = model.builtin_tta
    where = f"model {model.name!r} ({model.path}) has {inside} TTA built into its graph (card: onnx.tta)"
    if inside == "ten-crop" and (flip or ten_crop):
        raise ModelError(f"{where}; leave out --tta/--ten-crop")
    if inside == "flip" and flip:
        raise ModelError(f"{where}: --tta would mirror again for the same answer at twice the cost; leave it out")
    if inside == "flip" and ten_crop:
        return "five-crop", ["ten-crop: the five windows are evaluated here, the graph adds their mirror images"]
    return ("ten-crop" if ten_crop else "flip" if flip else None), []


def builtin_tta(card: dict[str, Any] | None) -> str | None:
    """The TTA an exported graph already does, from its card's `onnx.tta`: None, 'flip' or 'ten-crop'."""
    value = ((card or {}).get("onnx") or {}).get("tta")
    if value is True:
        return "flip"
    if value in KINDS:
        return str(value)
    return None


def ten_crop_module(net, padding: int = TEN_CROP_PADDING):
    """torch module: float (N, C, S, S) -> mean softmax (N, K) of `net` (logits) over the ten views.

    Padding is 'replicate' (ONNX Pad mode=edge), the windows are `crop_offsets`, so the exported graph
    computes what `ten_crop_views` + `averaged` compute in numpy.
    """
    import torch
    import torch.nn.functional as F

    offsets = crop_offsets(padding)

    class TenCropProbabilities(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.net = net

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            h, w = x.shape[-2], x.shape[-1]
            padded = F.pad(x, (padding, padding, padding, padding), mode="replicate")
            crops = [padded[:, :, r:r + h, c:c + w] for r, c in offsets]
            views = torch.cat(crops + [torch.flip(c, dims=[3]) for c in crops])  # (10N, C, S, S): one pass
            probs = torch.softmax(self.net(views), dim=1)
            return probs.reshape(len(offsets) * 2, x.shape[0], -1).mean(0)

    return TenCropProbabilities().eval()


__all__ = ["TEN_CROP_PADDING", "KINDS", "crop_offsets", "five_crop_views", "ten_crop_views", "averaged",
           "predict_batches", "tta_plan", "builtin_tta", "ten_crop_module"]
