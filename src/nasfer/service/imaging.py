"""Untrusted upload bytes -> RGB array for the HTTP service, with HTTP statuses for the refusals.

The type is sniffed from the bytes (never trusted from headers or file names) and only the JPEG,
PNG and WebP decoders are allowed; the decoding itself, with its pixel limit, its bound on decode
cost and its truncation checks, is `nasfer.runtime.images.decode`, shared with the Python API.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass

import numpy as np

from ..runtime import images
from ..errors import ImageError

#: Sniffed format -> MIME type.
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


def configure_pillow(max_pixels: int) -> None:
    """Make our `max_pixels` the one limit: Pillow's own bomb check (a warning above ~89 MP, an error
    above twice that) is raised to at least `max_pixels` and its warning silenced, since every
    image is checked against `max_pixels` right after its header is read. Process-wide; call once."""
    from PIL import Image

    if Image.MAX_IMAGE_PIXELS is not None and Image.MAX_IMAGE_PIXELS < max_pixels:
        Image.MAX_IMAGE_PIXELS = max_pixels
    warnings.filterwarnings("ignore", category=Image.DecompressionBombWarning)


def decode_image(data: bytes, max_pixels: int) -> DecodedImage:
    """Decode an upload to RGB uint8, or raise ImageRejected: 400 empty, 415 not a JPEG/PNG/WebP,
    413 more than `max_pixels`, 422 truncated, corrupt or implausibly short for its size."""
    if not data:
        raise ImageRejected(400, "empty_image", "the image is empty (0 bytes)")
    fmt = images.sniff(data)
    if fmt is None:
        raise ImageRejected(415, "unsupported_image_type",
                            "the data is not a JPEG, PNG or WebP image (checked from its first bytes)")
    try:
        rgb = images.decode(data, max_pixels, formats=(fmt,))
    except images.TooManyPixels as exc:
        raise ImageRejected(413, "image_too_large", f"{exc}. Resize it before uploading") from None
    except ImageError as exc:
        raise ImageRejected(422, "invalid_image", str(exc)) from None
    return DecodedImage(rgb=rgb, format=fmt)
