"""Face detectors behind one protocol, and the one way a detected face becomes a model-sized crop.

Detectors take an RGB (or grayscale) uint8 image and return `Box`es in that image's pixels. Large
images are detected on a downscaled copy (`max_side`) and the boxes mapped back, so a 24 MP phone
photo costs what a 640 px one does. Registry `DETECTORS` (name -> factory) keeps the choice a
lookup: `haar` (OpenCV's bundled cascade, always offline), `yunet` (cv2.FaceDetectorYN; its .onnx
is passed in or fetched once with `nasfer models fetch yunet`), `none` (the whole image is the face).

`crop_face` cuts the square around a box (side = the box's longer side), grayscale, resized to the
model's size, and rotated so the eyes are level when the detector gives landmarks. Margin 0 is
measured, not guessed: on FER2013 test crops pasted at 160 px into a canvas, the Haar box side is
0.97x (median; YuNet's longer side 0.99x) of the original crop with the centre offset under 2 %,
i.e. FER2013 crops are already detector-box squares.
"""

from __future__ import annotations

import math
import os
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Callable, Protocol, Sequence, runtime_checkable

import numpy as np

from .errors import ModelError

#: File name of the YuNet model that `nasfer models fetch yunet` stores in the cache directory.
YUNET_FILENAME = "face_detection_yunet_2023mar.onnx"


@dataclass(frozen=True)
class Box:
    """A face in image pixels (x, y = top left), with the detector's score and landmarks if it has them.

    YuNet's five landmarks are: the eye on the image's left, the other eye, nose tip, the mouth
    corner on the image's left, the other mouth corner.
    """

    x: int
    y: int
    w: int
    h: int
    score: float | None = None
    landmarks: tuple[tuple[float, float], ...] | None = None

    def as_tuple(self) -> tuple[int, int, int, int]:
        return (self.x, self.y, self.w, self.h)

    @property
    def area(self) -> int:
        return max(0, self.w) * max(0, self.h)

    def iou(self, other: "Box") -> float:
        """Intersection over union with `other` (0 when either is empty)."""
        ix = max(0, min(self.x + self.w, other.x + other.w) - max(self.x, other.x))
        iy = max(0, min(self.y + self.h, other.y + other.h) - max(self.y, other.y))
        inter = ix * iy
        union = self.area + other.area - inter
        return inter / union if union > 0 else 0.0

    def scaled(self, factor: float) -> "Box":
        """This box (and its landmarks) in an image `factor` times as large."""
        marks = None
        if self.landmarks is not None:
            marks = tuple((px * factor, py * factor) for px, py in self.landmarks)
        return replace(self, x=int(round(self.x * factor)), y=int(round(self.y * factor)),
                       w=int(round(self.w * factor)), h=int(round(self.h * factor)), landmarks=marks)

    def clipped(self, width: int, height: int) -> "Box":
        """The part of the box inside a width x height image (reported boxes never leave the image)."""
        x0, y0 = min(max(self.x, 0), width), min(max(self.y, 0), height)
        x1, y1 = min(max(self.x + self.w, 0), width), min(max(self.y + self.h, 0), height)
        return replace(self, x=x0, y=y0, w=x1 - x0, h=y1 - y0)


@runtime_checkable
class FaceDetector(Protocol):
    """Anything with `detect(image) -> list[Box]`; image is RGB (H, W, 3) or grayscale (H, W) uint8."""

    def detect(self, image: np.ndarray) -> list[Box]: ...


# ------------------------------------------------------------------------------------------------ helpers
def cache_dir() -> Path:
    """Per-user cache for downloaded detector models: $XDG_CACHE_HOME/nasfer or ~/.cache/nasfer."""
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "nasfer"


def yunet_cache_path() -> Path:
    return cache_dir() / YUNET_FILENAME


def to_gray(image: np.ndarray) -> np.ndarray:
    """uint8 grayscale view of an RGB (H, W, 3) or grayscale (H, W) image."""
    import cv2

    if image.ndim == 2:
        return image
    if image.ndim == 3 and image.shape[2] == 3:
        return cv2.cvtColor(image, cv2.COLOR_RGB2GRAY)
    raise ValueError(f"expected an RGB (H, W, 3) or grayscale (H, W) image, got shape {image.shape}")


def to_bgr(image: np.ndarray) -> np.ndarray:
    import cv2

    if image.ndim == 2:
        return cv2.cvtColor(image, cv2.COLOR_GRAY2BGR)
    return cv2.cvtColor(image, cv2.COLOR_RGB2BGR)


def downscale(image: np.ndarray, max_side: int) -> tuple[np.ndarray, float]:
    """(image no larger than max_side on its longer side, factor that maps its boxes back)."""
    import cv2

    h, w = image.shape[:2]
    longest = max(h, w)
    if max_side <= 0 or longest <= max_side:
        return image, 1.0
    scale = max_side / longest
    size = (max(1, int(round(w * scale))), max(1, int(round(h * scale))))
    small = cv2.resize(image, size, interpolation=cv2.INTER_AREA)
    return small, w / size[0]


def _square_region(gray: np.ndarray, cx: float, cy: float, side: int) -> np.ndarray:
    """The side x side square centred on (cx, cy); parts outside the image repeat its edge pixels.

    Only the needed region is padded, so a huge image with a small face costs a small copy.
    """
    import cv2

    H, W = gray.shape[:2]
    x0, y0 = int(round(cx - side / 2)), int(round(cy - side / 2))
    x1, y1 = x0 + side, y0 + side
    sx0, sy0, sx1, sy1 = max(x0, 0), max(y0, 0), min(x1, W), min(y1, H)
    if sx1 <= sx0 or sy1 <= sy0:  # no overlap at all: nearest edge pixels
        sx0, sy0 = min(max(x0, 0), W - 1), min(max(y0, 0), H - 1)
        sx1, sy1 = sx0 + 1, sy0 + 1
    part = gray[sy0:sy1, sx0:sx1]
    top, left = sy0 - y0, sx0 - x0
    bottom, right = side - top - part.shape[0], side - left - part.shape[1]
    if top or left or bottom or right:
        part = cv2.copyMakeBorder(part, max(top, 0), max(bottom, 0), max(left, 0), max(right, 0),
                                  cv2.BORDER_REPLICATE)
    return part


def eye_angle(landmarks: Sequence[tuple[float, float]] | None) -> float:
    """Degrees the face is rolled (0 = eyes level), from the first two landmarks (the eyes)."""
    if not landmarks or len(landmarks) < 2:
        return 0.0
    (ax, ay), (bx, by) = landmarks[0], landmarks[1]
    if ax > bx:  # order the eyes left to right in the image
        (ax, ay), (bx, by) = (bx, by), (ax, ay)
    return math.degrees(math.atan2(by - ay, bx - ax))


def crop_face(gray: np.ndarray, box: Box | Sequence[int], size: int = 48, margin: float = 0.0,
              align: bool = True) -> np.ndarray:
    """uint8 (size, size) crop of the face in `gray` (H, W) — what the classifier sees.

    The square has side max(w, h) * (1 + margin), centred on the box. With landmarks and `align`,
    the crop is rotated about the face centre so the eyes are level (FER2013 faces are upright).
    `box` may be a Box or an (x, y, w, h) sequence.
    """
    import cv2

    if gray.ndim != 2:
        gray = to_gray(gray)
    if isinstance(box, Box):
        x, y, w, h = box.as_tuple()
        landmarks = box.landmarks
    else:
        x, y, w, h = (int(v) for v in list(box)[:4])
        landmarks = None
    side = max(1, int(round(max(w, h) * (1.0 + margin))))
    cx, cy = x + w / 2.0, y + h / 2.0
    angle = eye_angle(landmarks) if align else 0.0
    if abs(angle) < 1.0:
        region = _square_region(gray, cx, cy, side)
        interp = cv2.INTER_AREA if side > size else cv2.INTER_LINEAR
        return cv2.resize(region, (size, size), interpolation=interp)
    # Rotating needs the corners too: take a 1.5x square, shrink it first (INTER_AREA keeps detail
    # without aliasing), rotate about its centre, and keep the middle size x size.
    big = int(math.ceil(side * 1.5))
    region = _square_region(gray, cx, cy, big)
    work = int(round(size * 1.5))
    interp = cv2.INTER_AREA if big > work else cv2.INTER_LINEAR
    region = cv2.resize(region, (work, work), interpolation=interp)
    centre = (work / 2.0, work / 2.0)
    matrix = cv2.getRotationMatrix2D(centre, angle, 1.0)
    matrix[:, 2] -= (work - size) / 2.0
    return cv2.warpAffine(region, matrix, (size, size), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)



# ------------------------------------------------------------------------------------------------ detectors
class HaarDetector:
    """OpenCV's frontal-face Haar cascade (ships with opencv-python): no model file, no network.

    Tuned for few false positives: on 120 face-free 640x480 scenes and 200 FER2013 faces pasted at
    60-200 px, scaleFactor 1.15 / minNeighbors 8 gave 5 false boxes (1.1 / 6: 31) for 139 faces
    found exactly once (1.1 / 6: 143). No histogram equalisation: it cost a third of the recall
    there. Gives no score or landmarks.
    """

    def __init__(self, scale_factor: float = 1.15, min_neighbors: int = 8, min_size: float = 0.075,
                 max_side: int = 640, cascade: str | None = None):
        import cv2

        path = cascade or os.path.join(cv2.data.haarcascades, "haarcascade_frontalface_default.xml")
        self.cascade = cv2.CascadeClassifier(path)
        if self.cascade.empty():
            raise ModelError(f"cannot load the Haar cascade {path}")
        self.scale_factor = scale_factor
        self.min_neighbors = min_neighbors
        self.min_size = min_size  # fraction of the shorter side of the detection image (>= 24 px)
        self.max_side = max_side

    def detect(self, image: np.ndarray) -> list[Box]:
        small, factor = downscale(to_gray(image), self.max_side)
        h, w = small.shape[:2]
        if min(h, w) < 24:  # below the cascade's window
            return []
        side = max(24, int(round(min(h, w) * self.min_size)))
        found = self.cascade.detectMultiScale(small, scaleFactor=self.scale_factor,
                                              minNeighbors=self.min_neighbors, minSize=(side, side))
        boxes = [Box(int(x), int(y), int(bw), int(bh)) for x, y, bw, bh in np.asarray(found).reshape(-1, 4)]
        return [b.scaled(factor) for b in boxes] if factor != 1.0 else boxes


class YuNetDetector:
    """OpenCV's YuNet CNN (cv2.FaceDetectorYN): faster and far more robust than Haar, with 5 landmarks.

    `model_path` defaults to the copy `nasfer models fetch yunet` stores in the user cache; nothing
    is ever downloaded here. Score threshold 0.7: on the set described for Haar it found 167 of
    200 faces exactly once with 5 false boxes (0.9, OpenCV's demo value: 85 faces, 0 false boxes).
    """

    def __init__(self, model_path: str | os.PathLike | None = None, score_threshold: float = 0.7,
                 nms_threshold: float = 0.3, max_side: int = 640):
        import cv2

        path = Path(model_path) if model_path else yunet_cache_path()
        if not path.is_file():
            if model_path:
                raise ModelError(f"YuNet model {path}: no such file")
            raise ModelError(f"the yunet detector needs its model: run `nasfer models fetch yunet` "
                             f"(stores {path}) or pass --detector-model FILE.onnx")
        try:
            self.net = cv2.FaceDetectorYN.create(str(path), "", (320, 320), score_threshold, nms_threshold, 5000)
        except cv2.error as exc:
            raise ModelError(f"{path}: not a YuNet model OpenCV can load ({str(exc).strip()[:200]})") from None
        self.model_path = path
        self.max_side = max_side
        self._input_size: tuple[int, int] | None = None

    def detect(self, image: np.ndarray) -> list[Box]:
        small, factor = downscale(image, self.max_side)
        h, w = small.shape[:2]
        if min(h, w) < 10:  # nothing face-sized fits
            return []
        if self._input_size != (w, h):
            self.net.setInputSize((w, h))
            self._input_size = (w, h)
        _, rows = self.net.detect(to_bgr(small))
        boxes = []
        for row in ([] if rows is None else rows):
            x, y, bw, bh = (float(v) for v in row[:4])
            marks = tuple((float(row[4 + 2 * i]), float(row[5 + 2 * i])) for i in range(5))
            boxes.append(Box(int(round(x)), int(round(y)), int(round(bw)), int(round(bh)),
                             score=float(row[14]), landmarks=marks))
        return [b.scaled(factor) for b in boxes] if factor != 1.0 else boxes


class WholeImageDetector:
    """The whole image is one face: for inputs that are face crops already (e.g. FER2013 images)."""

    def detect(self, image: np.ndarray) -> list[Box]:
        h, w = image.shape[:2]
        return [Box(0, 0, int(w), int(h))] if h and w else []


def _haar(model_path: str | os.PathLike | None = None, **kw) -> HaarDetector:
    return HaarDetector(cascade=str(model_path) if model_path else None, **kw)


def _yunet(model_path: str | os.PathLike | None = None, **kw) -> YuNetDetector:
    return YuNetDetector(model_path, **kw)


def _none(model_path: str | os.PathLike | None = None, **kw) -> WholeImageDetector:
    return WholeImageDetector()


#: name -> factory(model_path=None, **kw). Haar's model_path is an alternative cascade XML.
DETECTORS: dict[str, Callable[..., FaceDetector]] = {"haar": _haar, "yunet": _yunet, "none": _none}

#: One line per detector for `nasfer models list` and help texts.
DETECTOR_HELP: dict[str, str] = {
    "haar": "OpenCV Haar cascade; built in, offline, no landmarks",
    "yunet": "OpenCV YuNet CNN with eye/nose/mouth landmarks (faces are aligned); needs its .onnx "
             "(`nasfer models fetch yunet` or --detector-model)",
    "none": "no detection: the whole image is one face (for face crops)",
}


def create_detector(name: str, model_path: str | os.PathLike | None = None, **kw) -> FaceDetector:
    """Build the registered detector `name` (ValueError listing the choices for unknown names)."""
    if name not in DETECTORS:
        raise ValueError(f"unknown face detector {name!r}; choose one of {', '.join(DETECTORS)}")
    return DETECTORS[name](model_path=model_path, **kw)


__all__ = ["Box", "FaceDetector", "DETECTORS", "create_detector", "crop_face", "HaarDetector",
           "YuNetDetector", "WholeImageDetector", "cache_dir", "yunet_cache_path", "eye_angle"]
