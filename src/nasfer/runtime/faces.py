"""Face detectors behind one protocol, and the one way a detected face becomes a model-sized crop.

Detectors take an RGB (or grayscale) uint8 image and return `Box`es in that image's pixels. Every
detector finds faces down to `MIN_FACE` (40) original pixels at any image size: the image is shrunk
before detection only as far as keeps such a face at the detector's smallest window
(`detection_scale`), and the boxes are mapped back. Detectors may be shared between threads.
Registry `DETECTORS` (name -> factory) keeps the choice a lookup: `haar` (OpenCV's bundled cascade,
always offline), `yunet` (cv2.FaceDetectorYN, in `nasfer.runtime.yunet`; its .onnx is passed in or fetched
once with `nasfer models fetch yunet`), `none` (the whole image is the face).

`crop_face` cuts the square around a box (side = the box's longer side), grayscale, resized to the
model's size, and rotated so the eyes are level when the detector gives landmarks. Margin 0 is
measured, not guessed: on FER2013 test crops pasted at 160 px into a canvas, the Haar box side is
0.97x (median; YuNet's longer side 0.99x) of the original crop with the centre offset under 2 %,
i.e. FER2013 crops are already detector-box squares.
"""

from __future__ import annotations

import math
import os
import threading
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Callable, Protocol, Sequence, runtime_checkable

import numpy as np

from ..errors import ModelError

#: File name of the YuNet model that `nasfer models fetch yunet` stores in the cache directory.
YUNET_FILENAME = "face_detection_yunet_2023mar.onnx"


@dataclass(frozen=True)
class Box:
    """A face in image pixels (x, y = top left), with the detector's score and landmarks if it has them.

    YuNet's five landmarks are, for an upright face: the eye on the image's left (the person's right
    eye), the other eye, nose tip, the mouth corner on the image's left, the other mouth corner; for a
    turned face they turn with it. `upright`: True when the face's orientation was checked (YuNet),
    False when that check could not tell (the face is then reported `uncertain`), None when unchecked.
    """

    x: int
    y: int
    w: int
    h: int
    score: float | None = None
    landmarks: tuple[tuple[float, float], ...] | None = None
    upright: bool | None = None

    def as_tuple(self) -> tuple[int, int, int, int]:
        return (self.x, self.y, self.w, self.h)

    @property
    def area(self) -> int:
        return max(0, self.w) * max(0, self.h)

    def iou(self, other: "Box") -> float:
        """Intersection over union with `other` (0 when either is empty)."""
        return iou(self.as_tuple(), other.as_tuple())

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


def iou(a: Sequence[float], b: Sequence[float]) -> float:
    """Intersection over union of two (x, y, w, h) rectangles; 0 when either is empty."""
    ix = max(0, min(a[0] + a[2], b[0] + b[2]) - max(a[0], b[0]))
    iy = max(0, min(a[1] + a[3], b[1] + b[3]) - max(a[1], b[1]))
    inter = ix * iy
    union = max(0, a[2]) * max(0, a[3]) + max(0, b[2]) * max(0, b[3]) - inter
    return inter / union if union > 0 else 0.0


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
    """Degrees (-180..180) the face is rolled (0 = upright, eyes level), from the first two landmarks.

    The landmarks' order says which eye is which (YuNet: the person's right eye first), so a face
    turned by 90 or 180 degrees gives 90 or 180, not a level-looking angle.
    """
    if not landmarks or len(landmarks) < 2:
        return 0.0
    (ax, ay), (bx, by) = landmarks[0], landmarks[1]
    return math.degrees(math.atan2(by - ay, bx - ax))


def crop_face(gray: np.ndarray, box: Box | Sequence[int], size: int = 48, margin: float = 0.0,
              align: bool = True) -> np.ndarray:
    """uint8 (size, size) crop of the face in `gray` (H, W), or in an RGB (H, W, 3) image (only the face's
    region is converted to grayscale) — what the classifier sees.

    The square has side max(w, h) * (1 + margin), centred on the box. With landmarks and `align`,
    the crop is rotated about the face centre so the face is upright with level eyes (FER2013
    faces are upright); this also turns a face found sideways (see `YuNetDetector`) upright.
    `box` may be a Box or an (x, y, w, h) sequence.
    """
    import cv2

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
        region = to_gray(_square_region(gray, cx, cy, side))
        interp = cv2.INTER_AREA if side > size else cv2.INTER_LINEAR
        return cv2.resize(region, (size, size), interpolation=interp)
    # Rotating needs the corners too: take a 1.5x square, shrink it first (INTER_AREA keeps detail
    # without aliasing), rotate about its centre, and keep the middle size x size.
    big = int(math.ceil(side * 1.5))
    region = to_gray(_square_region(gray, cx, cy, big))
    work = int(round(size * 1.5))
    interp = cv2.INTER_AREA if big > work else cv2.INTER_LINEAR
    region = cv2.resize(region, (work, work), interpolation=interp)
    centre = (work / 2.0, work / 2.0)
    matrix = cv2.getRotationMatrix2D(centre, angle, 1.0)
    matrix[:, 2] -= (work - size) / 2.0
    return cv2.warpAffine(region, matrix, (size, size), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)



# ------------------------------------------------------------------------------------------------ detectors
#: Smallest face, in original-image pixels, that every detector must find at any image size.
MIN_FACE = 40


def detection_scale(min_face: int, window: int) -> float:
    """Factor to shrink an image by before detection so a `min_face`-pixel face still fills `window` px.

    Never above 1 (no upscaling): a detector whose smallest face is `window` pixels finds faces of
    `min_face` original pixels at this scale, whatever the image size. Shrinking further to save time
    (a fixed longest side) would move that floor up with the image size, which is what missed the
    100-150 px faces of 3000x2000 group photos.
    """
    if min_face <= 0:
        raise ValueError(f"min_face must be > 0 pixels, got {min_face}")
    return min(1.0, window / float(min_face))


def resize_by(image: np.ndarray, scale: float) -> tuple[np.ndarray, float]:
    """(image shrunk by `scale`, factor that maps its boxes back to `image`).

    INTER_AREA (no aliasing) below half size; above, bilinear, which aliases little there and costs
    about a quarter as much (shrinking a 640x480 photo to 0.8 on the busy 2-core machine: 1.5 ms
    against 0.4 ms of CPU).
    """
    import cv2

    if scale >= 1.0:
        return image, 1.0
    h, w = image.shape[:2]
    size = (max(1, int(round(w * scale))), max(1, int(round(h * scale))))
    interp = cv2.INTER_AREA if scale < 0.5 else cv2.INTER_LINEAR
    return cv2.resize(image, size, interpolation=interp), w / size[0]


class _PerThread:
    """One OpenCV object per thread, built by `factory`: cv2.CascadeClassifier and cv2.FaceDetectorYN keep
    per-call state and crash or raise when one instance is used by several threads at once."""

    def __init__(self, factory: Callable[[], object]):
        self.factory = factory
        self.local = threading.local()
        self.local.value = factory()  # built once here, so a bad model fails in the constructor

    def get(self):
        value = getattr(self.local, "value", None)
        if value is None:
            value = self.local.value = self.factory()
        return value


class HaarDetector:
    """OpenCV's frontal-face Haar cascade (ships with opencv-python): no model file, no network.

    Tuned for few false positives: on 120 face-free 640x480 scenes and 200 FER2013 faces pasted at
    60-200 px, scaleFactor 1.15 / minNeighbors 8 gave 5 false boxes (1.1 / 6: 31) for 139 faces
    found exactly once (1.1 / 6: 143). No histogram equalisation: it cost a third of the recall
    there. Gives no score or landmarks. `min_face` (original pixels) is the smallest face looked
    for: the image is shrunk so such a face is `window` px, never further (so not at all for the
    default 40 px). Boxes smaller than `verify_below` x `min_face` must also be found by the `alt`
    cascade (see `_confirmed`). Safe to share between threads (one cascade per thread).
    Scale step 1.2 was tried for speed (a 640x480 photo: 28.5 against 40 ms): on 200 FER2013 training faces
    pasted at 40-200 px into 640x480 noise it found 144 exactly once (1.15: 138), but on 133 face-free 640x480
    crops of 19 scikit-image scenes it gave 6 false boxes (1.15: 1), so 1.15 stays.
    """

    #: Detection-image size of a `min_face` face. The cascade's window is 24 px, but on shrunk copies
    #: it misses small faces: on a 3000x2000 group photo with astronaut faces of 40-100 px it found
    #: 4 of 11 at 24 px, 6 at 28, 8 at 32, 10 at 36 and all 11 at 40 px (no shrinking).
    window = 40

    def __init__(self, scale_factor: float = 1.15, min_neighbors: int = 8, min_face: int = MIN_FACE,
                 cascade: str | None = None, verify_below: float = 4.0):
        import cv2

        path = cascade or os.path.join(cv2.data.haarcascades, "haarcascade_frontalface_default.xml")
        if cascade:
            _load_cascade(path)  # a wrong file fails here, not at the first picture
        self._cascade = _PerThread(lambda: _load_cascade(path))
        self._verifier = _PerThread(lambda: _load_cascade(
            os.path.join(cv2.data.haarcascades, "haarcascade_frontalface_alt.xml")))
        self.scale_factor = scale_factor
        self.min_neighbors = min_neighbors
        self.min_face = int(min_face)
        self.scale = detection_scale(self.min_face, self.window)
        self.verify_below = verify_below

    def detect(self, image: np.ndarray) -> list[Box]:
        gray = to_gray(image)
        small, factor = resize_by(gray, self.scale)
        h, w = small.shape[:2]
        side = max(24, int(round(self.min_face / factor)))
        if min(h, w) < side:  # no face of the minimum size fits
            return []
        found = self._cascade.get().detectMultiScale(small, scaleFactor=self.scale_factor,
                                                     minNeighbors=self.min_neighbors, minSize=(side, side))
        boxes = [Box(int(x), int(y), int(bw), int(bh)) for x, y, bw, bh in np.asarray(found).reshape(-1, 4)]
        boxes = [b.scaled(factor) for b in boxes] if factor != 1.0 else boxes
        return [b for b in boxes if max(b.w, b.h) >= self.verify_below * self.min_face or self._confirmed(gray, b)]

    def _confirmed(self, gray: np.ndarray, box: Box) -> bool:
        """Whether OpenCV's second frontal cascade (`alt`) also finds a face in a 64 px copy of the box.

        Looking for 40 px faces in a large photo tests many windows, and the default cascade's rare
        false hits add up (3 in a 2048 px upscaled astronaut photo); none of them passed this second
        cascade there, while all 13 astronaut faces of 40-200 px in a 3000x2000 group photo did.
        """
        import cv2

        region = _square_region(gray, box.x + box.w / 2.0, box.y + box.h / 2.0, int(round(max(box.w, box.h) * 1.4)))
        region = cv2.resize(region, (64, 64), interpolation=cv2.INTER_AREA if region.shape[0] > 64 else cv2.INTER_LINEAR)
        return len(self._verifier.get().detectMultiScale(region, scaleFactor=1.1, minNeighbors=2,
                                                         minSize=(30, 30), maxSize=(64, 64))) > 0


def _load_cascade(path: str):
    """An OpenCV CascadeClassifier from the XML file `path`; ModelError when it is missing or no cascade (a
    YuNet .onnx given to the Haar detector raised SystemError from inside OpenCV)."""
    import cv2

    if not os.path.isfile(path):
        raise ModelError(f"Haar cascade {path}: no such file")
    try:
        cascade = cv2.CascadeClassifier(path)
    except (cv2.error, SystemError):
        cascade = None
    if cascade is None or cascade.empty():
        hint = "; a YuNet model needs --detector yunet (detector='yunet' in Python)" \
            if path.lower().endswith(".onnx") else ""
        raise ModelError(f"{path}: not a Haar cascade XML file OpenCV can load (the haar detector's "
                         f"--detector-model){hint}")
    return cascade


class WholeImageDetector:
    """The whole image is one face: for inputs that are face crops already (e.g. FER2013 images)."""

    def detect(self, image: np.ndarray) -> list[Box]:
        h, w = image.shape[:2]
        return [Box(0, 0, int(w), int(h))] if h and w else []


def _haar(model_path: str | os.PathLike | None = None, **kw) -> HaarDetector:
    return HaarDetector(cascade=str(model_path) if model_path else None, **kw)


def _yunet(model_path: str | os.PathLike | None = None, **kw):
    from .yunet import YuNetDetector

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


def check_detector(name: str, model_path: str | os.PathLike | None = None) -> None:
    """Without building it, what `create_detector(name, model_path)` would refuse for its arguments: ValueError
    listing the choices for an unknown name, ModelError for YuNet without its model file or a Haar cascade
    file that is none."""
    if name not in DETECTORS:
        raise ValueError(f"unknown face detector {name!r}; choose one of {', '.join(DETECTORS)}")
    if name == "yunet":
        from .yunet import yunet_model_file

        yunet_model_file(model_path)
    elif name == "haar" and model_path:
        _load_cascade(str(model_path))


def create_detector(name: str, model_path: str | os.PathLike | None = None, **kw) -> FaceDetector:
    """Build the registered detector `name` (ValueError listing the choices for unknown names; ModelError for
    a missing or unloadable model file)."""
    if name not in DETECTORS:
        check_detector(name)  # the unknown-name message
    return DETECTORS[name](model_path=model_path, **kw)  # each detector checks its own model file


__all__ = ["Box", "FaceDetector", "DETECTORS", "create_detector", "crop_face", "HaarDetector",
           "YuNetDetector", "WholeImageDetector", "cache_dir", "yunet_cache_path", "eye_angle", "iou",
           "MIN_FACE", "detection_scale"]



def __getattr__(name: str):
    if name == "YuNetDetector":  # lives in nasfer.runtime.yunet, which builds on the helpers here
        from .yunet import YuNetDetector

        return YuNetDetector
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
