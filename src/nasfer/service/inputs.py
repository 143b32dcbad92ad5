"""The input of POST /v1/emotions: the picture and the options, from a multipart form, a raw image
body or a JSON document, each checked before any image work starts (400/415 with a precise message)."""

from __future__ import annotations

import base64
import binascii
import math
import re
from dataclasses import dataclass
from typing import Any, Mapping

import numpy as np
from flask import current_app, request
from werkzeug.exceptions import RequestEntityTooLarge

from .app import ApiError
from .config import MAX_FACES_CAP, ServeConfig
from .imaging import MIME_TYPES

OPTIONS = ("detector", "threshold", "max_faces")
RAW_TYPES = (*MIME_TYPES, "application/octet-stream")
_RAW_NAMES = ", ".join(MIME_TYPES)  # image/jpeg, image/png, image/webp, image/gif, image/bmp, image/tiff


def max_faces_cap(cfg: ServeConfig) -> int:
    return cfg.max_faces or MAX_FACES_CAP


@dataclass(frozen=True)
class Options:
    detector: str
    threshold: float
    max_faces: int


def _bad(message: str, code: str = "invalid_request") -> ApiError:
    return ApiError(400, code, message)


def _body(cache: bool) -> bytes:
    """The request body. HTTP 413 (RequestEntityTooLarge, answered as the service's JSON error) when a body
    without Content-Length (chunked) fills the whole limit: Werkzeug stops reading such a stream at
    MAX_CONTENT_LENGTH without an error, so the picture would be cut off and refused as truncated (seen with
    `nasfer serve --dev`; the production worker refuses an oversize chunked body itself)."""
    data = request.get_data(cache=cache)
    limit = current_app.config.get("MAX_CONTENT_LENGTH")
    if request.content_length is None and limit is not None and len(data) >= limit:
        raise RequestEntityTooLarge()
    return data


def read_input() -> tuple[bytes, dict[str, Any]]:
    """(image bytes, options given in the body) from a multipart, JSON or raw-image request."""
    mimetype = request.mimetype
    if mimetype == "multipart/form-data":
        return _read_multipart()
    if mimetype == "application/json" or mimetype.endswith("+json"):
        return _read_json()
    if mimetype in RAW_TYPES:
        return _body(cache=False), {}
    if not mimetype:
        if not request.content_length and not _body(cache=True):
            raise _bad(f"no image in the request: send it as multipart field 'image', as a raw body "
                       f"({_RAW_NAMES} or application/octet-stream), or as JSON {{\"image_base64\": ...}}",
                       "missing_image")
        raise ApiError(415, "unsupported_media_type",
                       f"the request has a body but no Content-Type; use multipart/form-data, "
                       f"{_RAW_NAMES}, application/octet-stream or application/json")
    raise ApiError(415, "unsupported_media_type",
                   f"Content-Type {mimetype} is not supported; use multipart/form-data (field 'image'), "
                   f"{_RAW_NAMES}, application/octet-stream or application/json")


def _read_multipart() -> tuple[bytes, dict[str, Any]]:
    files, form = request.files, request.form
    unknown = sorted((set(files) | set(form)) - {"image", *OPTIONS})
    if unknown:
        raise _bad(f"unknown form field(s) {', '.join(map(repr, unknown))}; send the picture as file field "
                   f"'image' and options as fields {', '.join(OPTIONS)}", "unknown_field")
    uploaded_options = sorted(set(files) & set(OPTIONS))
    if uploaded_options:  # before: dropped silently, so the request ran with the default
        raise _bad(f"option(s) {', '.join(map(repr, uploaded_options))} must be text fields (e.g. curl -F "
                   f"{uploaded_options[0]}=VALUE), not file uploads", "invalid_option")
    if "image" not in files:
        if "image" in form:
            raise _bad("form field 'image' must be a file upload (e.g. curl -F image=@photo.jpg), not text",
                       "invalid_field")
        raise _bad("missing form field 'image' (the picture as a file upload)", "missing_image")
    if len(files.getlist("image")) > 1:
        raise _bad("send exactly one file in field 'image'", "invalid_field")
    options: dict[str, Any] = {}
    for name in OPTIONS:
        values = form.getlist(name)
        if len(values) > 1:
            raise _bad(f"option {name!r} is given more than once", "invalid_option")
        if values:
            options[name] = values[0]
    return files["image"].read(), options


#: Deepest JSON nesting accepted. The documented body is a flat object; a little slack lets a
#: wrong option value such as `[1]` get its precise message.
MAX_JSON_DEPTH = 4
_JSON_STRING = re.compile(rb'"[^"\\]*(?:\\.[^"\\]*)*"', re.DOTALL)


def json_depth(raw: bytes) -> int:
    """Deepest nesting of arrays/objects in JSON text `raw` (strings skipped; not validated).
    Linear time in C (regex + numpy), so a 10 MB body of brackets costs milliseconds."""
    if raw.count(b"[") + raw.count(b"{") <= 1:
        return int(b"[" in raw or b"{" in raw)
    structure = np.frombuffer(_JSON_STRING.sub(b'""', raw), dtype=np.uint8)
    steps = np.isin(structure, (ord("["), ord("{"))).astype(np.int32) - np.isin(structure, (ord("]"), ord("}")))
    return int(np.cumsum(steps).max(initial=0))


def _read_json() -> tuple[bytes, dict[str, Any]]:
    raw = _body(cache=True)
    if json_depth(raw) > MAX_JSON_DEPTH:
        raise _bad('the JSON body is nested too deeply; it must be an object such as {"image_base64": "..."}',
                   "invalid_json")
    body = request.get_json(silent=True)
    if body is None and raw.strip() != b"null":  # get_json gives None for invalid JSON and for `null` alike
        raise _bad("the body is not valid JSON", "invalid_json")
    if not isinstance(body, dict):
        raise _bad('the JSON body must be an object such as {"image_base64": "..."}', "invalid_json")
    unknown = sorted(set(body) - {"image_base64", *OPTIONS})
    if unknown:
        raise _bad(f"unknown JSON field(s) {', '.join(map(repr, unknown))}; expected image_base64 and "
                   f"optionally {', '.join(OPTIONS)}", "unknown_field")
    if "image_base64" not in body:
        raise _bad("missing JSON field 'image_base64' (the picture, base64-encoded)", "missing_image")
    encoded = body["image_base64"]
    if not isinstance(encoded, str):
        raise _bad("'image_base64' must be a string", "invalid_base64")
    for name in ("threshold", "max_faces"):  # typed as the OpenAPI schema says: a JSON number, not text
        if isinstance(body.get(name), str):
            raise _bad(f"{name} in a JSON body must be a JSON number ({body[name].strip()[:20]}, not "
                       f"{body[name][:20]!r})", "invalid_option")
    return _b64decode(encoded), {k: body[k] for k in OPTIONS if k in body}


def _b64decode(text: str) -> bytes:
    if text.startswith("data:"):  # a data URL straight from a browser canvas
        head, sep, text = text.partition(",")
        if not sep or ";base64" not in head:
            raise _bad("a data URL in 'image_base64' must be base64-encoded (data:image/jpeg;base64,...)",
                       "invalid_base64")
    compact = "".join(text.split())
    if not compact:
        raise ApiError(400, "empty_image", "'image_base64' is empty")
    compact += "=" * (-len(compact) % 4)
    try:
        if "-" in compact or "_" in compact:
            return base64.b64decode(compact, altchars=b"-_", validate=True)
        return base64.b64decode(compact, validate=True)
    except (binascii.Error, ValueError):
        raise _bad("'image_base64' is not valid base64", "invalid_base64") from None


def parse_options(body_options: Mapping[str, Any], cfg: ServeConfig, detectors: tuple[str, ...]) -> Options:
    unknown = sorted(set(request.args) - set(OPTIONS))
    if unknown:
        raise _bad(f"unknown query parameter(s) {', '.join(map(repr, unknown))}; "
                   f"allowed: {', '.join(OPTIONS)}", "unknown_parameter")
    raw: dict[str, Any] = {}
    for name in OPTIONS:
        values = request.args.getlist(name)
        if len(values) > 1:
            raise _bad(f"option {name!r} is given more than once", "invalid_option")
        if values and name in body_options:
            raise _bad(f"option {name!r} is given both in the query string and in the body", "invalid_option")
        if values:
            raw[name] = values[0]
        elif name in body_options:
            raw[name] = body_options[name]

    detector = raw.get("detector", cfg.detector)
    if not isinstance(detector, str) or detector not in detectors:
        raise _bad(f"detector must be one of {', '.join(detectors)}; got {detector!r}", "invalid_option")

    threshold = cfg.threshold
    if "threshold" in raw:
        threshold = _number(raw["threshold"], "threshold", float)
        if not (math.isfinite(threshold) and 0.0 <= threshold <= 1.0):
            raise _bad(f"threshold must be a number within 0..1; got {raw['threshold']!r}", "invalid_option")

    cap = max_faces_cap(cfg)
    max_faces = cap
    if "max_faces" in raw:
        from ..runtime.api import check_max_faces  # lazily: importing the service loads no model code

        try:  # the one face-limit rule (nasfer.runtime.api.check_max_faces), then this server's per-request cap
            limit = check_max_faces(int(_number(raw["max_faces"], "max_faces", int)))
        except ValueError:
            limit = None
        max_faces = limit or 0
        if not 1 <= max_faces <= cap:
            raise _bad(f"max_faces must be an integer within 1..{cap}; got {raw['max_faces']!r}",
                       "invalid_option")
    return Options(detector=detector, threshold=float(threshold), max_faces=max_faces)


_INTEGER = re.compile(r"[+-]?[0-9]+", re.ASCII)
_DECIMAL = re.compile(r"[+-]?(?:[0-9]+(?:\.[0-9]*)?|\.[0-9]+)(?:[eE][+-]?[0-9]+)?", re.ASCII)


def _number(value: Any, name: str, kind: type) -> float:
    """`value` as a float / int: a JSON number, or text in plain ASCII decimal notation (no `1_0`,
    no non-ASCII digits, no `nan`/`inf`: Python's int()/float() accept all of those)."""
    if isinstance(value, bool):
        raise _bad(f"{name} must be a number, not a boolean", "invalid_option")
    if isinstance(value, (int, float)):
        if kind is int and (not float(value).is_integer()):
            raise _bad(f"{name} must be an integer; got {value!r}", "invalid_option")
        return float(value) if kind is float else int(value)
    if isinstance(value, str):
        text = value.strip()
        if (_INTEGER if kind is int else _DECIMAL).fullmatch(text):
            return float(text) if kind is float else int(text, 10)
    kind_name = "an integer" if kind is int else "a number"
    raise _bad(f"{name} must be {kind_name} in decimal digits; got {str(value)[:40]!r}", "invalid_option")
