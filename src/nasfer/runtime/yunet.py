"""The YuNet face detector (OpenCV's cv2.FaceDetectorYN) behind `nasfer.runtime.faces`' detector protocol.

YuNet: Wu, Peng, Yu, "YuNet: A Tiny Millisecond-level Face Detector", Machine Intelligence Research
2023; model from the OpenCV model zoo (MIT licence). Registered as `yunet` in `nasfer.runtime.faces.DETECTORS`.
"""

from __future__ import annotations

import os
from dataclasses import replace
from pathlib import Path

import numpy as np

from ..errors import ModelError
from .faces import MIN_FACE, Box, _PerThread, _square_region, detection_scale, resize_by, to_bgr, yunet_cache_path


def yunet_model_file(model_path: str | os.PathLike | None = None) -> Path:
    """The YuNet model to load: `model_path`, or the copy `nasfer models fetch yunet` stores in the user cache.
    ModelError saying how to get it when the file is missing."""
    path = Path(model_path) if model_path else yunet_cache_path()
    if not path.is_file():
        if model_path:
            raise ModelError(f"YuNet model {path}: no such file")
        raise ModelError(f"the yunet detector needs its model: run `nasfer models fetch yunet` "
                         f"(stores {path}) or give the model file: detector_model=FILE.onnx in Python, "
                         f"--detector-model FILE.onnx on the command line")
    return path


class YuNetDetector:
    """OpenCV's YuNet CNN (cv2.FaceDetectorYN): faster and far more robust than Haar, with 5 landmarks.

    `model_path` defaults to the copy `nasfer models fetch yunet` stores in the user cache; nothing
    is ever downloaded here. Score threshold 0.7: on the set described for Haar it found 167 of
    200 faces exactly once with 5 false boxes (0.9, OpenCV's demo value: 85 faces, 0 false boxes).
    The image is shrunk so a `min_face` face is `window` px, never further. Pictures larger than that
    at `max_side` are searched as a bounded two-level pyramid: all faces on a copy at most `max_side`
    px long, and faces too small for that copy on the `window` copy, where each must also be found
    again by the orientation check below (which removes false hits at small sizes).

    Faces turned by 90 or 180 degrees (a sideways photo without an EXIF tag) are found by YuNet with
    landmarks laid out as if upright, so aligning on them keeps the crop sideways. `check_orientation`
    re-detects each face in a square around it turned by 0, 90, 180 and 270 degrees; YuNet scores
    the upright copy highest (measured: the astronaut 0.93 upright against 0.84-0.86 turned), so a
    turned copy that scores higher than the unturned one replaces the box and its landmarks (mapped
    back: the crop is then rotated upright). When the turned and unturned scores are within
    `orientation_margin`, the box is kept and marked `upright=False` (the API marks the face uncertain).
    YuNet never scores a turned face as high as a clear upright one, so faces scoring at least
    `upright_score` skip the check (it costs 4 small detections, about 3.7 ms a face, a quarter of the
    path): over 279 FER2013 training faces pasted at 160 px and turned by 90, 180 and 270 degrees, and the
    astronaut and the six faces of the cases' collage turned the same ways, no turned face scored above
    0.877 (the astronaut 0.80-0.87), while upright the collage's faces scored 0.916-0.935, the astronaut
    0.935 and the FER2013 faces 0.897 (median; 46 % at 0.9 or more). Faces of the fine pass are always
    checked (it also confirms them).
    Safe to share between threads (one network per thread).
    """

    #: Detection-image size of a `min_face` face. YuNet's smallest anchors are 10-16 px, but shrinking
    #: costs recall well before that: 97 FER2013 faces pasted at 160 px on 400 px canvases were found
    #: 95 times unshrunk, 90 at 0.8 (32 px), 85 at 0.5 (20 px).
    window = 32
    #: Side of the square (in px, and as a multiple of the face box) re-detected for the orientation check
    #: (96 px: as right as 128 px on 61 FER2013 faces and the astronaut turned 4 ways, 0.5 ms less).
    check_size, check_context = 96, 2.0

    def __init__(self, model_path: str | os.PathLike | None = None, score_threshold: float = 0.7,
                 nms_threshold: float = 0.3, min_face: int = MIN_FACE, check_orientation: bool = True,
                 orientation_margin: float = 0.02, max_side: int = 640, upright_score: float = 0.9):
        import cv2

        path = yunet_model_file(model_path)

        def build(size=(320, 320)):
            try:
                return _SizedNet(cv2.FaceDetectorYN.create(str(path), "", size, score_threshold,
                                                           nms_threshold, 5000))
            except cv2.error as exc:
                raise ModelError(f"{path}: not a YuNet model OpenCV can load "
                                 f"({str(exc).strip()[:200]})") from None

        self._net = _PerThread(build)
        self._check_net = _PerThread(lambda: build((self.check_size, self.check_size)))
        self.model_path = path
        self.min_face = int(min_face)
        self.scale = detection_scale(self.min_face, self.window)
        self.check_orientation = check_orientation
        self.orientation_margin = orientation_margin
        self.upright_score = upright_score
        self.max_side = max_side

    def detect(self, image: np.ndarray) -> list[Box]:
        longest = max(image.shape[:2])
        coarse = min(1.0, self.max_side / max(1, longest))
        if self.scale * longest <= self.max_side or coarse >= self.scale:
            passes: list[tuple[float, float | None]] = [(self.scale, None)]
        else:  # coarse pass for large faces, fine pass only for the small faces it cannot see
            passes = [(coarse, None), (self.scale, 1.25 * self.window / coarse)]
        net = self._net.get()
        boxes: list[tuple[Box, bool]] = []
        for scale, below in passes:
            small, factor = resize_by(image, scale)
            if min(small.shape[:2]) < 10:  # nothing face-sized fits
                continue
            found = [b.scaled(factor) if factor != 1.0 else b for b in net.run(to_bgr(small))]
            found = [b for b in found if max(b.w, b.h) >= 0.8 * self.min_face]
            if below is not None:
                found = [b for b in found if max(b.w, b.h) < below and all(b.iou(o) < 0.3 for o, _ in boxes)]
            boxes += [(b, below is not None) for b in found]
        if not self.check_orientation:
            return [b for b, _ in boxes]
        checked = [(replace(b, upright=True) if not fine and (b.score or 0.0) >= self.upright_score
                    else self._upright(image, b), fine) for b, fine in boxes]
        # A fine-pass face must be found again in its surroundings: looking for small faces in a large
        # picture tests many windows, and YuNet's rare false hits there (a galaxy in the Hubble deep
        # field) are not found again at twice the context.
        return [b for b, fine in checked if not (fine and b.upright is None)]

    def _upright(self, image: np.ndarray, box: Box) -> Box:
        """`box`, or the same face re-detected in a turned copy when that scores higher (see the class doc).

        `upright` of the result: True (checked), False (turned and unturned scores too close to tell),
        None (the face was not found again around the box).
        """
        side = max(box.w, box.h) * self.check_context
        cx, cy = box.x + box.w / 2.0, box.y + box.h / 2.0
        region = _square_region(image, cx, cy, int(round(side)))
        n = self.check_size
        region = to_bgr(_resize_square(region, n))
        net = self._check_net.get()
        best: list[tuple[float, int, Box | None]] = []
        for turns in range(4):
            found = net.run(np.ascontiguousarray(np.rot90(region, turns)))
            central = [b for b in found if abs(b.x + b.w / 2 - n / 2) < n / 4 and abs(b.y + b.h / 2 - n / 2) < n / 4]
            top = max(central, key=lambda b: b.score or 0.0, default=None)
            best.append((top.score if top is not None else 0.0, turns, top))
        base = best[0][0]
        score, turns, found_box = max(best[1:], key=lambda t: t[0])
        if found_box is None or score < base - self.orientation_margin:
            return replace(box, upright=True) if base > 0 else box
        if score < base + self.orientation_margin:
            return replace(box, upright=False)
        # Map the turned copy's box and landmarks back to image pixels.
        scale = side / n
        x0, y0 = cx - side / 2.0, cy - side / 2.0

        def back(px: float, py: float) -> tuple[float, float]:
            for _ in range(turns):  # undo np.rot90 (counter-clockwise) one quarter at a time
                px, py = n - py, px
            return x0 + px * scale, y0 + py * scale

        corners = [back(found_box.x, found_box.y), back(found_box.x + found_box.w, found_box.y + found_box.h)]
        xs, ys = [c[0] for c in corners], [c[1] for c in corners]
        marks = tuple(back(px, py) for px, py in (found_box.landmarks or ()))
        return Box(int(round(min(xs))), int(round(min(ys))), int(round(max(xs) - min(xs))),
                   int(round(max(ys) - min(ys))), score=found_box.score, landmarks=marks or None, upright=True)


class _SizedNet:
    """A cv2.FaceDetectorYN that changes its input size only when the image size changes."""

    def __init__(self, net):
        self.net = net
        self.size: tuple[int, int] | None = None

    def run(self, bgr: np.ndarray) -> list[Box]:
        h, w = bgr.shape[:2]
        if self.size != (w, h):
            self.net.setInputSize((w, h))
            self.size = (w, h)
        _, rows = self.net.detect(bgr)
        boxes = []
        for row in ([] if rows is None else rows):
            x, y, bw, bh = (float(v) for v in row[:4])
            marks = tuple((float(row[4 + 2 * i]), float(row[5 + 2 * i])) for i in range(5))
            boxes.append(Box(int(round(x)), int(round(y)), int(round(bw)), int(round(bh)),
                             score=float(row[14]), landmarks=marks))
        return boxes


def _resize_square(region: np.ndarray, n: int) -> np.ndarray:
    import cv2

    interp = cv2.INTER_AREA if region.shape[0] > n else cv2.INTER_LINEAR
    return cv2.resize(region, (n, n), interpolation=interp)


__all__ = ["YuNetDetector"]
