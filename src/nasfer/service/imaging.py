"""Untrusted image bytes -> RGB array, with the checks a public endpoint needs.

The type is sniffed from the bytes (never trusted from headers or file names), only the JPEG, PNG
and WebP decoders are allowed, the pixel count is checked from the header *before* decoding
(decompression bombs), truncated files are errors rather than half-grey pictures, and the EXIF
orientation that phone cameras write is applied so boxes match what the user sees.
"""

from __future__ import annotations

import io
import warnings
from dataclasses import dataclass

import numpy as np

#: Sniffed format -> MIME type. Order matters only for readability.
FORMATS = {"JPEG": "image/jpeg", "PNG": "image/png", "WEBP": "image/webp"}
MIME_TYPES = tuple(FORMATS.values())


class ImageRejected(Exception):
    """Raised for unacceptable image bytes; carries the HTTP status and a machine-readable code."""

    def __init__(self, status: int, code: str, message: str):
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message


@dataclass(frozen=True)
class DecodedImage:
    rgb: np.ndarray  # uint8 (H, W, 3)
    format: str  # JPEG, PNG or WEBP

    @property
    def width(self) -> int:
        return int(self.rgb.shape[1])

    @property
    def height(self) -> int:
        return int(self.rgb.shape[0])


def sniff(data: bytes) -> str | None:
    """'JPEG', 'PNG', 'WEBP' from the magic bytes, or None."""
    if data[:3] == b"\xff\xd8\xff":
        return "JPEG"
    if data[:8] == b"\x89PNG\r\n\x1a\n":
        return "PNG"
    if len(data) >= 12 and data[:4] == b"RIFF" and data[8:12] == b"WEBP":
        return "WEBP"
    return None


def configure_pillow(max_pixels: int) -> None:
    """Make our `max_pixels` the one limit: Pillow's own bomb check (a warning above ~89 MP, an error
    above twice that) is raised to at least `max_pixels` and its warning silenced, since every
    image is checked against `max_pixels` right after its header is read. Process-wide; call once."""
    from PIL import Image

    if Image.MAX_IMAGE_PIXELS is not None and Image.MAX_IMAGE_PIXELS < max_pixels:
        Image.MAX_IMAGE_PIXELS = max_pixels
    warnings.filterwarnings("ignore", category=Image.DecompressionBombWarning)


def decode_image(data: bytes, max_pixels: int) -> DecodedImage:
    """Decode `data` to RGB uint8, or raise ImageRejected (400/413/415/422) saying why."""
    from PIL import Image, ImageOps

    if not data:
        raise ImageRejected(400, "empty_image", "the image is empty (0 bytes)")
    fmt = sniff(data)
    if fmt is None:
        raise ImageRejected(415, "unsupported_image_type",
                            "the data is not a JPEG, PNG or WebP image (checked from its first bytes)")
    try:
        img = Image.open(io.BytesIO(data), formats=[fmt])
        width, height = img.size
        if width <= 0 or height <= 0:
            raise ImageRejected(422, "invalid_image", "the image has no pixels")
        if width * height > max_pixels:
            raise _too_many_pixels(width, height, max_pixels)
        img.load()  # raises on truncated data (Pillow's default LOAD_TRUNCATED_IMAGES=False)
        try:
            img = ImageOps.exif_transpose(img) or img
        except Exception:  # unreadable EXIF: keep the picture as stored rather than refuse it
            pass
        if img.mode in ("I;16", "I;16B", "I;16L", "I", "F"):
            # 16-bit / float greyscale PNG: scale to 8 bits rather than clip to white.
            arr = np.asarray(img, dtype=np.float64)
            hi = float(arr.max()) if arr.size else 0.0
            arr = (arr * (255.0 / hi) if hi > 255 else arr).clip(0, 255).astype(np.uint8)
            img = Image.fromarray(arr)
        if img.mode in ("RGBA", "LA", "PA") or (img.mode == "P" and "transparency" in img.info):
            # Transparent pixels become white, as a browser would show them.
            rgba = img.convert("RGBA")
            background = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
            img = Image.alpha_composite(background, rgba)
        rgb = np.ascontiguousarray(np.asarray(img.convert("RGB"), dtype=np.uint8))
    except ImageRejected:
        raise
    except Image.DecompressionBombError:
        raise _too_many_pixels(0, 0, max_pixels) from None
    except MemoryError:
        raise ImageRejected(413, "image_too_large", "the image is too large to decode") from None
    except Exception as exc:  # PIL raises OSError, SyntaxError, ValueError, struct.error, ...
        raise ImageRejected(422, "invalid_image",
                            f"the {fmt} image could not be decoded (truncated or corrupt): {_short(exc)}") from None
    return DecodedImage(rgb=rgb, format=fmt)


def _too_many_pixels(width: int, height: int, max_pixels: int) -> ImageRejected:
    size = f"{width}x{height} = {width * height / 1e6:.1f} MP" if width and height else "its size"
    return ImageRejected(413, "image_too_large",
                         f"the image has too many pixels ({size}); the limit is {max_pixels / 1e6:g} MP. "
                         f"Resize it before uploading")


def _short(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
    return text[:200]
