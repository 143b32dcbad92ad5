"""The Python API: find faces in a picture and say which emotion each one shows.

    from nasfer import EmotionRecognizer
    recognizer = EmotionRecognizer()                 # shipped model, Haar detector
    for face in recognizer.detect("photo.jpg"):
        print(face.box, face.label, face.confidence)

Pictures may be a path, encoded bytes, a PIL image or a numpy array (RGB by default, `color="bgr"`
for OpenCV frames). Files and bytes are decoded with Pillow, the EXIF orientation that phones
write is applied (boxes refer to the upright picture), and anything undecodable, empty or larger
than `max_pixels` (decompression bombs) is an ImageError with a one-line reason. No torch here.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Sequence

import numpy as np

from . import images
from ..errors import ImageError

#: Default largest accepted picture (width x height): a 50 MP photo decodes to 150 MB of RGB.
MAX_PIXELS = 50_000_000
#: Default confidence below which a face is marked `uncertain`.
THRESHOLD = 0.25


# ------------------------------------------------------------------------------------------------ images
# One decoder for the API, the CLI and the HTTP service: nasfer.runtime.images.
_check_pixels, _from_pil, _from_bytes = images.check_pixels, images.from_pil, images.decode


def _from_array(arr: np.ndarray, color: str, max_pixels: int) -> np.ndarray:
    if arr.dtype != np.uint8:
        raise ImageError(f"expected a uint8 image array, got {arr.dtype}")
    if arr.ndim == 3 and arr.shape[2] in (1, 2):  # gray, or gray + alpha (a PIL "LA" image): keep the gray
        arr = arr[:, :, 0]
    if arr.ndim == 2:
        _check_pixels(arr.shape[1], arr.shape[0], max_pixels)
        return np.ascontiguousarray(np.repeat(arr[:, :, None], 3, axis=2))
    if arr.ndim != 3 or arr.shape[2] not in (3, 4):
        raise ImageError(f"expected an image array of shape (H, W), (H, W, 1|2), (H, W, 3) or (H, W, 4), got {arr.shape}")
    _check_pixels(arr.shape[1], arr.shape[0], max_pixels)
    arr = arr[:, :, :3]
    return np.ascontiguousarray(arr[:, :, ::-1] if color == "bgr" else arr)


def load_image(image: Any, color: str = "rgb", max_pixels: int = MAX_PIXELS) -> np.ndarray:
    """RGB uint8 (H, W, 3) from a path, bytes, PIL image or ndarray; ImageError says why not.

    `color` says how a 3/4-channel ndarray is ordered ("rgb" or "bgr", OpenCV's); files, bytes and
    PIL images know their own colours. 2-D arrays are grayscale.
    """
    if color not in ("rgb", "bgr"):
        raise ValueError(f"color must be 'rgb' or 'bgr', got {color!r}")
    if isinstance(image, (str, os.PathLike)):
        if not os.fspath(image):
            raise ImageError("an empty path: give the image's file name")
        path = Path(image)
        try:
            data = path.read_bytes()
        except FileNotFoundError:
            raise ImageError(f"{path}: no such file") from None
        except IsADirectoryError:
            raise ImageError(f"{path}: is a directory, not an image") from None
        except OSError as exc:
            raise ImageError(f"{path}: cannot read ({exc.strerror or exc})") from None
        try:
            return _from_bytes(data, max_pixels)
        except ImageError as exc:
            raise ImageError(f"{path}: {exc}") from None
    if isinstance(image, (bytes, bytearray, memoryview)):
        return _from_bytes(bytes(image), max_pixels)
    if isinstance(image, np.ndarray):
        return _from_array(image, color, max_pixels)
    if type(image).__module__.startswith("PIL."):
        return _from_pil(image, max_pixels)
    raise ImageError(f"cannot use a {type(image).__name__} as an image (give a path, bytes, PIL image or ndarray)")


# ------------------------------------------------------------------------------------------------ faces
@dataclass
class Face:
    """One detected face: where it is (image pixels) and how likely each emotion is."""

    box: tuple[int, int, int, int]
    scores: dict[str, float]
    label: str
    confidence: float
    uncertain: bool
    detector_score: float | None = None
    landmarks: list[tuple[float, float]] | None = None

    @classmethod
    def from_probs(cls, box: tuple[int, int, int, int], probs: Sequence[float], labels: Sequence[str],
                   threshold: float = THRESHOLD, detector_score: float | None = None,
                   landmarks: Sequence[tuple[float, float]] | None = None) -> "Face":
        probs = np.asarray(probs, dtype=np.float64)
        top = int(np.argmax(probs))
        confidence = float(probs[top])
        return cls(box=tuple(int(v) for v in box),  # type: ignore[arg-type]
                   scores={str(k): float(p) for k, p in zip(labels, probs)},
                   label=str(labels[top]), confidence=confidence, uncertain=bool(confidence < threshold),
                   detector_score=None if detector_score is None else float(detector_score),
                   landmarks=None if landmarks is None else [(float(x), float(y)) for x, y in landmarks])

    def to_dict(self) -> dict[str, Any]:
        """JSON-safe dict (the service returns exactly this; field order as documented)."""
        return {
            "box": [int(v) for v in self.box],
            "detector_score": None if self.detector_score is None else round(float(self.detector_score), 4),
            "landmarks": None if self.landmarks is None else [[round(x, 1), round(y, 1)] for x, y in self.landmarks],
            "scores": {k: round(float(v), 6) for k, v in self.scores.items()},
            "label": self.label,
            "confidence": round(float(self.confidence), 6),
            "uncertain": bool(self.uncertain),
        }


def _is_int(value: Any) -> bool:
    return isinstance(value, (int, np.integer)) and not isinstance(value, bool)


def check_threshold(value: Any) -> float:
    """The one validation of a confidence threshold given in Python: a real number within 0..1, returned as a
    float; ValueError otherwise (a string, None, NaN)."""
    if isinstance(value, bool) or not isinstance(value, (int, float, np.integer, np.floating)) \
            or not 0.0 <= float(value) <= 1.0:
        raise ValueError(f"threshold must be a number within 0..1, got {value!r}")
    return float(value)


def check_max_faces(value: int | None) -> int | None:
    """The one validation of a face limit (CLI, Python API and service): None or 0 mean no limit.

    Returns None (no limit) or the positive limit; ValueError for negative or non-integer values.
    """
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)):
        raise ValueError(f"max_faces must be an integer >= 0 (0: no limit), got {value!r}")
    if value < 0:
        raise ValueError(f"max_faces must be >= 0 (0: no limit), got {value}")
    return int(value) or None


#: Largest side, in pixels, of an image that may be a face crop given to a face detector by mistake.
CROP_HINT_MAX_SIDE = 160
#: Smallest side, in pixels, of such an image: below it a face crop is implausible (FER2013 crops are 48 px,
#: face detectors' smallest faces about 20 px), so a 1x1 or 10x10 picture gets no hint.
CROP_HINT_MIN_SIDE = 24


def crop_hint(width: int, height: int) -> str | None:
    """What to tell when a detector finds no face in a width x height image that looks like a face crop.

    Small (CROP_HINT_MIN_SIDE..CROP_HINT_MAX_SIDE px a side), roughly square images (FER2013 is 48x48) are
    usually crops: a detector cannot find a face that fills the whole picture, and the fix is to classify the
    image without detection.
    """
    if not CROP_HINT_MIN_SIDE <= min(width, height) <= max(width, height) <= CROP_HINT_MAX_SIDE \
            or not 0.75 <= width / max(1, height) <= 1.34:
        return None
    return (f"no face found, but this small image ({width}x{height}) looks like a face crop already: "
            "classify it without detection with detector 'none' (CLI: --detector none; Python: "
            "EmotionRecognizer(detector='none'); HTTP: detector=none)")


class Detections(list):
    """The faces of one picture (a list of `Face`, largest first) and, when there is none, a `hint`
    saying why that may be and what to do (see `crop_hint`); `hint` is None otherwise."""

    def __init__(self, faces: Sequence["Face"] = (), hint: str | None = None):
        super().__init__(faces)
        self.hint = hint


@dataclass
class EmotionRecognizer:
    """Face detector + emotion classifier.

    model: .onnx path (None: the shipped default). detector: a name in nasfer.runtime.faces.DETECTORS or a
    detector object (anything with a `detect(rgb)` method returning boxes). detector_model: the detector's model
    file (YuNet's .onnx). threshold: faces below this confidence (0..1) are `uncertain`. threads: ONNX Runtime
    threads, 1..1024 (None or 0: all cores). max_pixels: largest picture accepted, width x height.
    max_faces: keep the largest N faces (None or 0: all; ValueError if negative). min_face: smallest
    face looked for, in original pixels (default `nasfer.runtime.faces.MIN_FACE`, 40), at any image size.
    ValueError, naming the argument, for a value outside these (checked here, not at the first call), and for
    min_face or detector_model with detector='none'.
    One instance may be shared by several threads: the detectors keep one OpenCV object per thread
    and ONNX Runtime sessions are thread-safe, so the results are those of serial calls.
    """

    model: str | os.PathLike | None = None
    detector: Any = "haar"
    detector_model: str | os.PathLike | None = None
    threshold: float = THRESHOLD
    threads: int | None = None
    max_faces: int | None = None
    max_pixels: int = MAX_PIXELS
    align: bool = True
    min_face: int | None = None
    classifier: Any = field(init=False, repr=False)
    face_detector: Any = field(init=False, repr=False)

    def __post_init__(self) -> None:
        from .engine import Classifier, check_threads
        from .faces import DETECTORS, MIN_FACE, create_detector

        self.threshold = check_threshold(self.threshold)
        self.max_faces = check_max_faces(self.max_faces)
        self.threads = check_threads(self.threads)
        if self.min_face is not None and (not _is_int(self.min_face) or self.min_face < 1):
            raise ValueError(f"min_face must be an integer >= 1 pixel (None: {MIN_FACE}), got {self.min_face!r}")
        if isinstance(self.detector, str) and self.detector == "none":  # each image is one face: nothing to tune
            for name in ("min_face", "detector_model"):
                if getattr(self, name) is not None:
                    raise ValueError(f"{name} only applies with a face detector (haar or yunet); detector='none' "
                                     f"takes each image as one face, got {name}={getattr(self, name)!r}")
        if not _is_int(self.max_pixels) or self.max_pixels < 1:
            raise ValueError(f"max_pixels must be an integer >= 1, got {self.max_pixels!r}")
        if not isinstance(self.detector, str) and not callable(getattr(self.detector, "detect", None)):
            raise ValueError(f"detector must be a name ({', '.join(DETECTORS)}) or an object with a "
                             f"detect(rgb) method, got {self.detector!r}")
        self.classifier = Classifier(self.model, threads=self.threads, spin=False)  # see Classifier: spin
        if isinstance(self.detector, str):
            kw = {"min_face": self.min_face} if self.min_face and self.detector in ("haar", "yunet") else {}
            self.face_detector = create_detector(self.detector, model_path=self.detector_model, **kw)
        else:
            self.face_detector = self.detector

    @property
    def labels(self) -> tuple[str, ...]:
        return self.classifier.labels

    @property
    def card(self) -> dict[str, Any]:
        return self.classifier.card

    def boxes(self, rgb: np.ndarray) -> list:
        """The detector's boxes for an RGB image, largest first, at most `max_faces`."""
        boxes = sorted(self.face_detector.detect(rgb), key=lambda b: b.w * b.h, reverse=True)
        return boxes[: self.max_faces] if self.max_faces else boxes

    def crops(self, rgb: np.ndarray, boxes: Sequence) -> np.ndarray:
        """uint8 (N, S, S) model-ready crops of `boxes` in `rgb`."""
        from .faces import crop_face

        size = self.classifier.size
        if not boxes:
            return np.zeros((0, size, size), np.uint8)
        return np.stack([crop_face(rgb, box, size, align=self.align) for box in boxes])  # gray per face only

    def detect(self, image: Any, color: str = "rgb", threshold: float | None = None) -> Detections:
        """Faces in `image` (path, bytes, PIL image or ndarray), largest first, each with its emotion.

        Returns a `Detections` list; when it is empty, `.hint` may say why (e.g. a face crop given to
        a face detector). `threshold` overrides the instance's for this call (a per-request setting).
        ImageError when the picture cannot be used.
        """
        rgb = load_image(image, color, self.max_pixels)
        return self.detect_rgb(rgb, threshold)

    def detect_rgb(self, rgb: np.ndarray, threshold: float | None = None) -> Detections:
        """`detect` for an already decoded RGB uint8 (H, W, 3) array (no copy, no checks)."""
        from .faces import WholeImageDetector

        threshold = self.threshold if threshold is None else check_threshold(threshold)

        boxes = self.boxes(rgb)
        probs = self.classifier.predict(self.crops(rgb, boxes))
        height, width = rgb.shape[:2]
        faces = []
        for box, p in zip(boxes, probs):
            shown = box.clipped(width, height)
            face = Face.from_probs(shown.as_tuple(), p, self.labels, threshold, box.score, box.landmarks)
            if getattr(box, "upright", None) is False:  # the detector could not tell which way is up
                face.uncertain = True
            faces.append(face)
        hint = None
        if not faces and not isinstance(self.face_detector, WholeImageDetector):
            hint = crop_hint(width, height)
        return Detections(faces, hint)

    def classify(self, crops: Any, color: str = "rgb") -> np.ndarray:
        """Probabilities float32 (N, K), K = len(self.labels), for N face crops (no detection).

        Accepted (see `as_crops`): one crop as an (H, W) gray, (H, W, 1) gray, (H, W, 2) gray + alpha
        (a PIL "LA" image), (H, W, 3) colour or (H, W, 4) colour + alpha array (alpha is dropped); a
        batch as an (N, H, W) gray array (N >= 1, and W not in {1, 2, 3, 4}: an (H, W, 3) or (H, W, 2)
        array is always one crop, never a batch of rows) or an (N, H, W, 1|2|3|4) array; or a list of
        crops of any sizes (arrays, paths, bytes, PIL images). Crops of any size are converted to the
        model's input: grayscale (ITU-R 601 luma), resized to S x S (the card's size; INTER_AREA down,
        INTER_LINEAR up), as the detector path does. dtypes: uint8 0..255; other integer types holding
        0..255; float in 0..1 (scaled by 255). Anything else raises ImageError saying what was expected.
        """
        from .crops import as_crops

        batch = as_crops(crops, self.classifier.size, color)
        if not len(batch):
            return np.zeros((0, len(self.labels)), np.float32)
        return self.classifier.predict(batch)


__all__ = ["EmotionRecognizer", "Face", "Detections", "load_image", "check_max_faces", "crop_hint",
           "MAX_PIXELS", "THRESHOLD"]
