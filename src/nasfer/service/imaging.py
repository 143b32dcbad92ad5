"""Untrusted upload bytes -> RGB array for the HTTP service, with HTTP statuses for the refusals.

The type is sniffed from the bytes (never trusted from headers or file names) and only the decoders
of the still-image formats `nasfer predict` reads are allowed: JPEG, PNG, WebP, GIF (its first frame),
BMP and TIFF (its first page). The decoding itself, with its pixel limit, its bound on decode cost and
its truncation checks, is `nasfer.runtime.images.decode`, shared with the Python API; for GIF, BMP
and TIFF, whose bound depends on the compression the header names, it is checked here first.
"""

from __future__ import annotations

import io
import warnings
from dataclasses import dataclass

import numpy as np

from ..runtime import images
from ..errors import ImageError

#: Sniffed format (Pillow's name) -> MIME type.
FORMATS = {"JPEG": "image/jpeg", "PNG": "image/png", "WEBP": "image/webp",
           "GIF": "image/gif", "BMP": "image/bmp", "TIFF": "image/tiff"}
MIME_TYPES = tuple(FORMATS.values())

#: BMP header sizes Pillow reads (bytes 14..18 of the file); with the "BM" magic they tell a BMP
#: from text that merely starts with "BM".
_BMP_HEADERS = (12, 40, 52, 56, 64, 108, 124)
_TIFF_MAGIC = (b"II*\0", b"MM\0*", b"II+\0", b"MM\0+")  # classic and BigTIFF, either byte order

#: The most pixels one byte of the file can carry, with a margin, per (format, compression as
#: Pillow names it), for the formats `nasfer.runtime.images` has no bound for. Uncompressed: 8
#: (1-bit pixels). PackBits: 128 bytes from 2, 512 1-bit pixels. Deflate: 8256, as for PNG. LZW
#: (TIFF, and GIF, whose only coding it is): each 12-bit code stands for a string one byte longer than
#: an earlier one, at most about 2600 bytes per byte (an encoder that never clears its table), x 8
#: for 1-bit TIFF pixels; a GIF's screen may be larger than its first frame, hence GIF's margin of 3.
#: JPEG in TIFF: 1024, as for JPEG. Not listed (fax codings, RLE BMP with its skips, LZMA, zstd, WebP
#: in TIFF): no bound but the pixel limit. A header claiming more is a file that is truncated or
#: corrupt (libjpeg pads a JPEG strip that ends early with grey, without an error).
MAX_PIXELS_PER_BYTE = {
    ("BMP", 0): 8, ("BMP", 3): 8,  # BI_RGB, BI_BITFIELDS
    ("GIF", None): 8192,
    ("TIFF", "raw"): 8, ("TIFF", "packbits"): 512, ("TIFF", "tiff_lzw"): 32768,
    ("TIFF", "tiff_deflate"): 8256, ("TIFF", "tiff_adobe_deflate"): 8256,
    ("TIFF", "jpeg"): 1024, ("TIFF", "tiff_jpeg"): 1024,
}


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
    format: str  # a key of FORMATS: JPEG, PNG, WEBP, GIF, BMP or TIFF

    @property
    def width(self) -> int:
        return int(self.rgb.shape[1])

    @property
    def height(self) -> int:
        return int(self.rgb.shape[0])


def configure_pillow(max_pixels: int) -> None:
    """Make our `max_pixels` the one limit: Pillow's own bomb check (a warning above ~89 MP, an error
    above twice that) is raised to at least `max_pixels` and its warning silenced, since every
    image is checked against `max_pixels` right after its header is read. The TIFF reader's warnings
    about damaged uploads ("Truncated File Read", "Corrupt EXIF data") are silenced too: such a file
    is answered with a 422, or read as far as it is sound. Process-wide; call once."""
    from PIL import Image

    if Image.MAX_IMAGE_PIXELS is not None and Image.MAX_IMAGE_PIXELS < max_pixels:
        Image.MAX_IMAGE_PIXELS = max_pixels
    warnings.filterwarnings("ignore", category=Image.DecompressionBombWarning)
    warnings.filterwarnings("ignore", category=UserWarning, module=r"PIL\.TiffImagePlugin")


def sniff(data: bytes) -> str | None:
    """A key of FORMATS from the first bytes of `data`, or None."""
    fmt = images.sniff(data)
    if fmt is not None:
        return fmt
    if data[:6] in (b"GIF87a", b"GIF89a"):
        return "GIF"
    if data[:2] == b"BM" and len(data) >= 18 and int.from_bytes(data[14:18], "little") in _BMP_HEADERS:
        return "BMP"
    if data[:4] in _TIFF_MAGIC:
        return "TIFF"
    return None


def check_header(data: bytes, fmt: str, max_pixels: int) -> None:
    """For GIF, BMP and TIFF: raise TooManyPixels above `max_pixels`, ImageError when `data` is too
    short for the pixels its header claims (MAX_PIXELS_PER_BYTE). Reads the header only; a header
    that cannot be read is left to `images.decode` to refuse with its own message."""
    from PIL import Image

    try:
        with Image.open(io.BytesIO(data), formats=[fmt]) as img:
            width, height = img.width, img.height
            compression = img.info.get("compression") if fmt != "GIF" else None
    except Exception:
        return
    images.check_pixels(width, height, max_pixels)
    per_byte = MAX_PIXELS_PER_BYTE.get((fmt, compression))
    if per_byte is not None and width * height > per_byte * len(data):
        raise ImageError(f"the {fmt} image is truncated or corrupt: its header claims {width}x{height} pixels, "
                         f"more than {len(data):,} bytes can hold")


def decode_image(data: bytes, max_pixels: int) -> DecodedImage:
    """Decode an upload to RGB uint8, or raise ImageRejected: 400 empty, 415 not one of FORMATS (a
    JPEG, PNG, WebP, GIF, BMP or TIFF), 413 more than `max_pixels`, 422 truncated, corrupt or
    implausibly short for its size. Of an animated GIF or a multi-page TIFF the first picture is used."""
    if not data:
        raise ImageRejected(400, "empty_image", "the image is empty (0 bytes)")
    fmt = sniff(data)
    if fmt is None:
        raise ImageRejected(415, "unsupported_image_type",
                            "the data is not a JPEG, PNG, WebP, GIF, BMP or TIFF image (checked from its first bytes)")
    try:
        if fmt not in images.MAX_PIXELS_PER_BYTE:
            check_header(data, fmt, max_pixels)
        rgb = images.decode(data, max_pixels, formats=(fmt,))
    except images.TooManyPixels as exc:
        raise ImageRejected(413, "image_too_large", f"{exc}. Resize it before uploading") from None
    except ImageError as exc:
        raise ImageRejected(422, "invalid_image", str(exc)) from None
    return DecodedImage(rgb=rgb, format=fmt)
