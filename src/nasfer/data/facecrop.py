"""`--detect-faces`: train on the faces inside ordinary photos.

The readers stay detector-free: they read the dataset as usual (labels, splits, sources, a whole-image
48x48 thumbnail per file), then `read_face_crops` re-reads every original image at full resolution, runs
the face detector on it (`nasfer.faces.create_detector`, Haar by default: offline, no model file) and
replaces the thumbnail by the crop of the largest face, made the same way the inference path crops.
An image without a detectable face keeps its whole-image thumbnail (small images are often face crops
already); the counts go into the dataset's notes, which the training report prints.
"""

from __future__ import annotations

from pathlib import Path, PurePosixPath
from typing import Any

import numpy as np

from ..errors import DataError
from .dataset import FaceDataset
from .readers import detect_kind, read_dataset
from .sources import Entry, open_source
from .splits import sample_keys


def _xywh(box: Any) -> tuple[int, int, int, int]:
    if hasattr(box, "w") and hasattr(box, "x"):
        return int(box.x), int(box.y), int(box.w), int(box.h)
    if hasattr(box, "box"):
        return tuple(int(v) for v in box.box)[:4]  # type: ignore[return-value]
    return tuple(int(v) for v in box)[:4]  # type: ignore[return-value]


def square_crop(gray: np.ndarray, box: tuple[int, int, int, int], size: int = 48, margin: float = 0.0) -> np.ndarray:
    """The square around a face box (side = the box's longer side, plus `margin` of it), resized to `size`.

    Parts of the square outside the image are filled by edge replication, so a face at the border
    is not stretched.
    """
    import cv2

    x, y, w, h = box
    side = max(w, h) * (1.0 + margin)
    cx, cy = x + w / 2.0, y + h / 2.0
    x0, y0 = int(round(cx - side / 2)), int(round(cy - side / 2))
    s = max(1, int(round(side)))
    H, W = gray.shape[:2]
    pad = max(0, -x0, -y0, x0 + s - W, y0 + s - H)
    if pad:
        gray = cv2.copyMakeBorder(gray, pad, pad, pad, pad, cv2.BORDER_REPLICATE)
        x0, y0 = x0 + pad, y0 + pad
    crop = gray[y0:y0 + s, x0:x0 + s]
    interp = cv2.INTER_AREA if s > size else cv2.INTER_LINEAR
    return cv2.resize(crop, (size, size), interpolation=interp)


def _crop_function():
    """The inference path's crop (`nasfer.faces.crop_face`): train and serve must cut faces alike."""
    try:
        from .. import faces
    except ImportError:
        return None
    fn = getattr(faces, "crop_face", None) or getattr(faces, "crop", None)
    return fn if callable(fn) else None


def create_face_detector(name: str = "haar", model_path: str | None = None):
    try:
        from ..faces import create_detector
    except ImportError as exc:
        raise DataError(f"--detect-faces needs the face detectors of nasfer.faces, which cannot be imported ({exc})") from None
    return create_detector(name, model_path=model_path)


def detect_largest_face(detector: Any, image_rgb: np.ndarray) -> tuple[Any, int]:
    """(the largest detected face as the detector gave it — a `faces.Box` with landmarks — or None, faces found)."""
    boxes = [b for b in detector.detect(image_rgb) if _xywh(b)[2] > 0 and _xywh(b)[3] > 0]
    if not boxes:
        return None, 0
    return max(boxes, key=lambda b: _xywh(b)[2] * _xywh(b)[3]), len(boxes)


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
    detector = detector if detector is not None else create_face_detector(detector_name)
    crop = _crop_function()
    source = open_source(p)
    images = data.images.copy()
    found = several = 0
    for i, key in enumerate(sample_keys(data.sources, str(p)).tolist()):
        raw = source.read(Entry(PurePosixPath(key)))
        bgr = cv2.imdecode(np.frombuffer(raw, dtype=np.uint8), cv2.IMREAD_COLOR)
        if bgr is None:
            continue  # the reader decoded it, so this cannot happen for a readable file; keep the thumbnail
        box, n = detect_largest_face(detector, cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB))
        if box is None:
            continue
        found += 1
        several += n > 1
        gray = cv2.cvtColor(bgr, cv2.COLOR_BGR2GRAY)
        if crop is not None:  # the same crop (and eye alignment, with landmarks) as at inference
            face = np.asarray(crop(gray, box if not isinstance(box, (tuple, list)) else tuple(box), size, margin))
        else:
            face = square_crop(gray, _xywh(box), size, margin)
        images[i] = face.astype(np.uint8)
    notes = list(data.notes) + [
        f"--detect-faces ({detector_name}): face cropped in {found} of {len(data)} images; "
        f"{len(data) - found} without a detectable face kept whole"
        + (f"; {several} with several faces (the largest used)" if several else "")]
    return FaceDataset(images=images, labels=data.labels, splits=data.splits, sources=data.sources,
                       label_names=data.label_names, skipped=data.skipped, notes=notes)


__all__ = ["read_face_crops", "square_crop", "detect_largest_face", "create_face_detector"]
