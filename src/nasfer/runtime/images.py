"""Encoded picture -> upright RGB uint8 array: the one image decoder of the runtime (Python API,
`nasfer predict`/`video` and the HTTP service all call it). Needs numpy and Pillow, no torch.

What it guarantees for untrusted bytes:

* the pixel count is checked from the header, before anything is decoded (decompression bombs);
* the decode cost is bounded by what the bytes can hold: a file whose header claims more pixels than
  its format could encode in that many bytes (`MAX_PIXELS_PER_BYTE`) is refused as truncated or
  corrupt before decoding. Pillow raises on a stream that simply stops, but a JPEG whose scan data
  ends early (or is replaced by an EOI marker) is padded with grey by libjpeg without an error; a
  633-byte JPEG claiming 4900x4900 would otherwise decode to 24 MP of grey;
* truncated or corrupt data is an `ImageError`, never a half-grey picture;
* the EXIF orientation that phone cameras write is applied; transparency is composited on white;
  16-bit and float greyscale is scaled to 8 bits rather than clipped.

Error messages are one line and never contain Python object reprs.
"""

from __future__ import annotations

import io
import re

import numpy as np

from ..errors import ImageError

#: The most pixels one byte of each format can carry, with a wide margin. JPEG: Huffman coding
#: spends at least one bit per 8x8 block and component, i.e. at most 512 pixels per byte (Pillow's
#: smallest, a flat optimised greyscale JPEG, holds 251); 1024 leaves a factor of 2 for exotic
#: encoders. PNG: deflate expands at most 1032:1 and a 1-bit pixel is 1/8 byte, so 8256. Lossy WebP
#: (VP8): a flat picture holds about 560 pixels per byte; 4096. Lossless WebP (VP8L) can describe a
#: flat picture of any size in a few bytes: only the pixel limit applies to it.
MAX_PIXELS_PER_BYTE = {"JPEG": 1024, "PNG": 8256, "WEBP": 4096}

class TooManyPixels(ImageError):
    """The picture has more pixels than the caller's limit (`width`, `height`: 0 when unknown)."""

    def __init__(self, message: str, width: int = 0, height: int = 0):
        super().__init__(message)
        self.width = width
        self.height = height


def sniff(data: bytes) -> str | None:
    """'JPEG', 'PNG' or 'WEBP' from the first bytes of `data`, or None."""
    if data[:3] == b"\xff\xd8\xff":
        return "JPEG"
    if data[:8] == b"\x89PNG\r\n\x1a\n":
        return "PNG"
    if len(data) >= 12 and data[:4] == b"RIFF" and data[8:12] == b"WEBP":
        return "WEBP"
    return None


def check_pixels(width: int, height: int, max_pixels: int) -> None:
    """Raise ImageError for an empty picture, TooManyPixels above `max_pixels` (width x height)."""
    if width <= 0 or height <= 0:
        raise ImageError("the image is empty (no pixels)")
    if width * height > max_pixels:
        raise TooManyPixels(f"the image has too many pixels ({width}x{height} = {width * height / 1e6:.1f} MP; "
                            f"the limit is {max_pixels / 1e6:g} MP)", width, height)


def check_plausible_size(fmt: str, data: bytes, width: int, height: int) -> None:
    """Raise ImageError when `data` (`fmt`) is too short to encode width x height pixels."""
    per_byte = MAX_PIXELS_PER_BYTE.get(fmt)
    if per_byte is None or (fmt == "WEBP" and b"VP8L" in data[12:4096]):  # lossless WebP: no bound
        return
    if width * height > per_byte * len(data):
        raise ImageError(f"the {fmt} image is truncated or corrupt: its header claims {width}x{height} pixels, "
                         f"more than {len(data):,} bytes can hold")


def decode(data: bytes, max_pixels: int, formats: tuple[str, ...] | None = None) -> np.ndarray:
    """Upright RGB uint8 (H, W, 3) from encoded bytes.

    formats: Pillow format names to try (None: every format Pillow reads). Raises ImageError (empty,
    unreadable, truncated, corrupt, implausibly short) or TooManyPixels (over `max_pixels`).
    """
    from PIL import Image, UnidentifiedImageError

    if not data:
        raise ImageError("the image is empty (0 bytes)")
    try:
        img = Image.open(io.BytesIO(data), formats=list(formats) if formats else None)
    except UnidentifiedImageError:
        kinds = "/".join(formats) if formats else "an image format that can be read (JPEG, PNG, WebP, BMP, TIFF, ...)"
        raise ImageError(f"the data is not {kinds}, or it is corrupt") from None
    except Image.DecompressionBombError as exc:
        raise _bomb(exc, max_pixels) from None
    except Exception as exc:  # Pillow raises OSError, SyntaxError, ValueError, struct.error, ...
        raise ImageError(f"cannot decode the image (truncated or corrupt): {short(exc)}") from None
    check_pixels(img.width, img.height, max_pixels)
    check_plausible_size(img.format or "", data, img.width, img.height)
    return from_pil(img, max_pixels)


def gray_to_uint8(arr: np.ndarray, is_float: bool) -> np.ndarray:
    """uint8 gray from a wider gray image float64 (H, W): values above 255 (16- or 32-bit) are scaled so the
    maximum becomes 255; float images within 0..1 (the usual float convention) are scaled by 255; the rest is
    kept and clipped to 0..255. NaN becomes 0."""
    arr = np.nan_to_num(arr, nan=0.0, posinf=0.0, neginf=0.0)
    hi = float(arr.max()) if arr.size else 0.0
    if hi > 255:
        arr = arr * (255.0 / hi)
    elif is_float and hi <= 1.0:
        arr = np.rint(arr * 255.0)
    return arr.clip(0, 255).astype(np.uint8)


def depth_to_uint8(arr: np.ndarray) -> np.ndarray:
    """`arr` (H, W) or (H, W, C) as decoded with its own depth: uint8 as it is, 16-bit or float through
    `gray_to_uint8` (the datasets' readers and the face-crop reader use it on OpenCV's ANYDEPTH decodes)."""
    return arr if arr.dtype == np.uint8 else gray_to_uint8(arr.astype(np.float64), arr.dtype.kind == "f")


def from_pil(img, max_pixels: int) -> np.ndarray:
    """Upright RGB uint8 (H, W, 3) from a PIL image (EXIF orientation applied, alpha on white)."""
    from PIL import Image, ImageOps

    check_pixels(img.width, img.height, max_pixels)
    try:
        img.load()  # raises on truncated data (Pillow's default LOAD_TRUNCATED_IMAGES=False)
        try:
            img = ImageOps.exif_transpose(img) or img
        except Exception:  # a damaged EXIF block: keep the picture as stored rather than refuse it
            pass
        if img.mode in ("I;16", "I;16B", "I;16L", "I", "F"):  # 16-bit / float gray: scale, don't clip
            img = Image.fromarray(gray_to_uint8(np.asarray(img, dtype=np.float64), img.mode == "F"))
        if img.mode in ("RGBA", "LA", "PA") or (img.mode == "P" and "transparency" in img.info):
            rgba = img.convert("RGBA")
            img = Image.alpha_composite(Image.new("RGBA", rgba.size, (255, 255, 255, 255)), rgba)
        return np.ascontiguousarray(np.asarray(img.convert("RGB"), dtype=np.uint8))
    except ImageError:
        raise
    except Image.DecompressionBombError as exc:
        raise _bomb(exc, max_pixels) from None
    except MemoryError:
        raise ImageError("the image is too large to decode") from None
    except Exception as exc:  # Pillow raises OSError, SyntaxError, ValueError, struct.error, ...
        raise ImageError(f"cannot decode the image (truncated or corrupt): {short(exc)}") from None


def _bomb(exc: BaseException, max_pixels: int) -> TooManyPixels:
    """Pillow's own bomb error (above twice Image.MAX_IMAGE_PIXELS) with the size it states."""
    found = re.search(r"\((\d+) pixels\)", str(exc))
    size = f"{int(found.group(1)) / 1e6:.1f} MP" if found else "more than Pillow's own limit"
    return TooManyPixels(f"the image has too many pixels ({size}; the limit is {max_pixels / 1e6:g} MP)")


_OBJECT_REPR = re.compile(r"<[^<>]*\bat 0x[0-9a-fA-F]+>")


def short(exc: BaseException) -> str:
    """First line of `exc`'s message, without object reprs (no memory addresses), at most 200 chars."""
    text = _OBJECT_REPR.sub("the data", str(exc).strip())
    return (text.splitlines()[0] if text else type(exc).__name__)[:200]
