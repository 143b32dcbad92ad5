"""`--detect-faces`: train on the faces inside ordinary photos.

The readers stay detector-free: they read the dataset as usual (labels, splits, sources, a whole-image
48x48 thumbnail per file), then `read_face_crops` re-reads every original image at full resolution, runs
the face detector on it (`nasfer.runtime.faces.create_detector`, Haar by default: offline, no model file) and
replaces the thumbnail by the crop of the largest face, made the same way the inference path crops.
An image without a detectable face keeps its whole-image thumbnail (small images are often face crops
already); the counts go into the dataset's notes, which the training report prints.
"""

from __future__ import annotations

from pathlib import Path, PurePosixPath
from typing import Any

import numpy as np

from ..errors import DataError
from ..runtime.faces import Box, create_detector, crop_face
from .dataset import FaceDataset
from .readers import detect_kind, read_dataset
from .sources import Entry, open_source
from .splits import sample_keys


def detect_largest_face(detector: Any, image_rgb: np.ndarray) -> tuple[Box | None, int]:
    """(the largest detected face, with its landmarks, or None; how many faces were found)."""
    boxes = [b for b in detector.detect(image_rgb) if b.w > 0 and b.h > 0]
    if not boxes:
        return None, 0
    return max(boxes, key=lambda b: b.w * b.h), len(boxes)


def decode_bgr(data: bytes) -> np.ndarray | None:
    """Bytes of an image -> BGR uint8 (H, W, 3) for the detector, or None if undecodable. 16-bit and float images
    become uint8 as `readers.decode_gray` (the thumbnails) and the runtime make them (`gray_to_uint8`); before,
    OpenCV's 8-bit conversion kept a 12-bit PNG's high byte (a face crop of values 0..15) and float TIFFs, which
    IMREAD_COLOR cannot read, kept their whole-image thumbnail. 8-bit images decode as IMREAD_COLOR does."""
    import cv2

    from ..runtime.images import depth_to_uint8

    arr = cv2.imdecode(np.frombuffer(data, dtype=np.uint8), cv2.IMREAD_ANYCOLOR | cv2.IMREAD_ANYDEPTH)
    if arr is None or arr.size == 0:
        return None
    arr = depth_to_uint8(arr)
    return cv2.cvtColor(arr, cv2.COLOR_GRAY2BGR) if arr.ndim == 2 else arr


def read_face_crops(
    path: str | Path,
    dataset: str = "auto",
    *,
    contempt: str = "exclude",
    strict: bool = False,
    label_set: str = "canonical",
    size: int = 48,
    detector: Any = None,
    detector_name: str = "haar",
    margin: float = 0.0,
) -> FaceDataset:
    """`read_dataset`, with every image replaced by the crop of its largest face (see the module doc)."""
    import cv2

    p = Path(path).expanduser()
    kind = detect_kind(p) if dataset == "auto" else dataset
    if kind == "fer2013-csv":
        raise DataError("--detect-faces needs image files; fer2013.csv rows are 48x48 face crops already")
    data = read_dataset(p, kind, contempt=contempt, strict=strict, label_set=label_set, size=size)  # type: ignore[arg-type]
    detector = detector if detector is not None else create_detector(detector_name)
    source = open_source(p)
    images = data.images.copy()
    found = several = 0
    for i, key in enumerate(sample_keys(data.sources, str(p)).tolist()):
        raw = source.read(Entry(PurePosixPath(key)))
        bgr = decode_bgr(raw)
        if bgr is None:
            continue  # the reader decoded it, so this cannot happen for a readable file; keep the thumbnail
        box, n = detect_largest_face(detector, cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB))
        if box is None:
            continue
        found += 1
        several += n > 1
        gray = cv2.cvtColor(bgr, cv2.COLOR_BGR2GRAY)
        # The inference path's crop (and eye alignment, with landmarks): train and serve cut faces alike.
        images[i] = crop_face(gray, box, size, margin)
    notes = list(data.notes) + [
        f"--detect-faces ({detector_name}): face cropped in {found} of {len(data)} images; "
        f"{len(data) - found} without a detectable face kept whole"
        + (f"; {several} with several faces (the largest used)" if several else "")]
    return FaceDataset(images=images, labels=data.labels, splits=data.splits, sources=data.sources,
                       label_names=data.label_names, skipped=data.skipped, notes=notes)


def trained_on_face_crops(training: dict, kind: str) -> bool:
    """Whether a model whose training run's config is `training` ({"train": {...}, "data": {...}}, as cards and
    checkpoints record it) trained on face crops (`--detect-faces`), so that images of a `kind` dataset must be
    cropped the same way before it scores or calibrates on them; fer2013.csv rows are face crops already.
    An ensemble trained on face crops when its members did (`nasfer ensemble` refuses a mix)."""
    from ..checkpoint import on_face_crops

    return on_face_crops(training) and kind != "fer2013-csv"


def read_images(path: str | Path, kind: str, *, face_crops: bool, **kwargs: Any) -> FaceDataset:
    """`read_face_crops` when `face_crops`, else `read_dataset`; `kwargs` go to the reader (contempt, strict,
    label_set, size)."""
    if face_crops:
        return read_face_crops(path, kind, **kwargs)
    return read_dataset(path, kind, **kwargs)  # type: ignore[arg-type]


__all__ = ["read_face_crops", "detect_largest_face", "decode_bgr", "trained_on_face_crops", "read_images"]
