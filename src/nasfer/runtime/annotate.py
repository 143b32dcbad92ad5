"""Draw faces on a picture: box in the emotion's colour, label with confidence, and a confidence bar.

Used by `nasfer predict --annotate`, `nasfer video` and anything else that shows results. Faces may
be `nasfer.runtime.api.Face` objects or their `to_dict()` form; sizes scale with the picture so labels stay
readable on a phone photo and on a 320 px video alike.
"""

from __future__ import annotations

import zlib
from typing import Any, Mapping, Sequence

import numpy as np

#: RGB colour per canonical emotion (other label sets get stable colours from their names).
EMOTION_COLORS: dict[str, tuple[int, int, int]] = {
    "angry": (230, 57, 70),
    "disgust": (106, 153, 78),
    "fear": (155, 93, 229),
    "happy": (255, 190, 11),
    "sad": (58, 134, 255),
    "surprise": (255, 0, 110),
    "neutral": (173, 181, 189),
}
UNCERTAIN_COLOR = (128, 128, 128)


def label_color(label: str) -> tuple[int, int, int]:
    """RGB colour of a label: the canonical palette, else a bright colour derived from the name."""
    if label in EMOTION_COLORS:
        return EMOTION_COLORS[label]
    h = zlib.crc32(label.encode("utf-8"))
    return (80 + h % 176, 80 + (h >> 8) % 176, 80 + (h >> 16) % 176)


def _get(face: Any, key: str, default: Any = None) -> Any:
    if isinstance(face, Mapping):
        return face.get(key, default)
    return getattr(face, key, default)


def draw_faces(image: np.ndarray, faces: Sequence[Any], *, color: str = "rgb",
               ids: Sequence[Any] | None = None) -> np.ndarray:
    """A copy of `image` (uint8 (H, W, 3), `color` "rgb" or "bgr") with every face drawn on it.

    `ids` (one per face, e.g. a tracker's face ids) are prefixed to the labels.
    """
    import cv2

    out = np.ascontiguousarray(image.copy())
    if out.ndim == 2:
        out = cv2.cvtColor(out, cv2.COLOR_GRAY2RGB)
    H, W = out.shape[:2]
    unit = max(1.0, min(H, W) / 480.0)
    thickness = max(1, int(round(2 * unit)))
    font_scale = 0.5 * unit
    for i, face in enumerate(faces):
        x, y, w, h = (int(v) for v in _get(face, "box"))
        label = str(_get(face, "label", ""))
        confidence = float(_get(face, "confidence", 0.0) or 0.0)
        uncertain = bool(_get(face, "uncertain", False))
        rgb = UNCERTAIN_COLOR if uncertain else label_color(label)
        col = tuple(int(c) for c in (rgb[::-1] if color == "bgr" else rgb))
        cv2.rectangle(out, (x, y), (x + w - 1, y + h - 1), col, thickness, cv2.LINE_AA)
        text = f"{label}{'?' if uncertain else ''} {confidence:.0%}"
        if ids is not None and i < len(ids) and ids[i] is not None:
            text = f"#{ids[i]} {text}"
        (tw, th), base = cv2.getTextSize(text, cv2.FONT_HERSHEY_SIMPLEX, font_scale, max(1, thickness // 2))
        ty = y - th - base - 2 * thickness
        ty = ty if ty >= 0 else min(y + h + thickness, max(0, H - th - base))  # below the box at the top edge
        cv2.rectangle(out, (x, ty), (x + tw + 2 * thickness, ty + th + base + thickness), col, -1)
        ink = (0, 0, 0) if sum(rgb) > 380 else (255, 255, 255)
        cv2.putText(out, text, (x + thickness, ty + th + thickness // 2), cv2.FONT_HERSHEY_SIMPLEX, font_scale,
                    ink, max(1, thickness // 2), cv2.LINE_AA)
        # Confidence bar under the box (inside it where the image ends): a dark track, full width = 100 %, so the
        # bar stands apart from the box's own edge (before: inside the edge, in its colour, hard to see).
        bar_h = max(4, thickness * 3)
        by = y + h + thickness if y + h + thickness + bar_h <= H else max(y, y + h - bar_h)
        cv2.rectangle(out, (x, by), (x + w - 1, by + bar_h - 1), (40, 40, 40), -1)
        cv2.rectangle(out, (x, by), (x + max(0, int(round((w - 1) * min(1.0, confidence)))), by + bar_h - 1), col, -1)
    return out


__all__ = ["draw_faces", "label_color", "EMOTION_COLORS"]


#: What an annotated copy's EXIF Software tag says, so that a later run knows the file is one it may replace.
ANNOTATED_BY = "nasfer predict --annotate"
_EXIF_SOFTWARE = 0x0131  # EXIF/TIFF tag 305, "Software"
#: Formats whose annotated copies keep the picture's format and name (each stores EXIF); others become PNG.
ANNOTATED_SUFFIXES = (".jpg", ".jpeg", ".png", ".webp")


def save_annotated(rgb: np.ndarray, path: Any) -> None:
    """Write the annotated picture rgb uint8 (H, W, 3) to `path` (format from its suffix, one of
    ANNOTATED_SUFFIXES; JPEG at quality 92), folders made as needed, with ANNOTATED_BY in its EXIF Software tag
    (`is_annotated_copy`)."""
    from pathlib import Path

    from PIL import Image

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    exif = Image.Exif()
    exif[_EXIF_SOFTWARE] = ANNOTATED_BY
    extra = {"quality": 92} if path.suffix.lower() in (".jpg", ".jpeg") else {}
    Image.fromarray(rgb).save(path, exif=exif.tobytes(), **extra)


def is_annotated_copy(path: Any) -> bool:
    """Whether the file at `path` is an annotated copy `save_annotated` wrote (its EXIF Software tag); False for
    any other file, an unreadable one or a missing one."""
    from PIL import Image

    try:
        with Image.open(path) as img:
            return img.getexif().get(_EXIF_SOFTWARE) == ANNOTATED_BY
    except Exception:  # Pillow raises many types for files that are not pictures
        return False
