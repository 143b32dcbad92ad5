"""HTTP routes: the emotion API, health/readiness, model card, metrics, OpenAPI, docs, web client."""

from __future__ import annotations

import base64
import binascii
import hashlib
import logging
import math
import re
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Mapping

from flask import Blueprint, Response, current_app, g, jsonify, render_template, request, send_from_directory
from markupsafe import Markup, escape
import numpy as np

from ..commands.serve import bind_address
from .app import ApiError
from .config import ServeConfig
from .imaging import MIME_TYPES, ImageRejected, decode_image
from .metrics import Metrics
from .recognizers import PoolBusy, RecognizerPools, RecognizerUnavailable

log = logging.getLogger("nasfer.service")

bp = Blueprint("nasfer", __name__)

OPTIONS = ("detector", "threshold", "max_faces")
RAW_TYPES = (*MIME_TYPES, "application/octet-stream")
MAX_FACES_CAP = 100  # the most a request may ask for when the server sets no limit
#: /readyz answers 503 (saturated) when more requests than this many per thread wait in the worker.
SATURATED_QUEUE_PER_THREAD = 8
STATIC = Path(__file__).resolve().parent / "static"


def _state() -> dict[str, Any]:
    return current_app.extensions["nasfer"]


def _config() -> ServeConfig:
    return _state()["config"]


def _pools() -> RecognizerPools:
    return _state()["pools"]


def _metrics() -> Metrics:
    return _state()["metrics"]


def max_faces_cap(cfg: ServeConfig) -> int:
    return cfg.max_faces or MAX_FACES_CAP


# --------------------------------------------------------------------------------------------
# POST /v1/emotions
# --------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Options:
    detector: str
    threshold: float
    max_faces: int


def _bad(message: str, code: str = "invalid_request") -> ApiError:
    return ApiError(400, code, message)


def _read_input() -> tuple[bytes, dict[str, Any]]:
    """(image bytes, options given in the body) from a multipart, JSON or raw-image request."""
    mimetype = request.mimetype
    if mimetype == "multipart/form-data":
        return _read_multipart()
    if mimetype == "application/json" or mimetype.endswith("+json"):
        return _read_json()
    if mimetype in RAW_TYPES:
        return request.get_data(cache=False), {}
    if not mimetype:
        if not request.content_length and not request.get_data(cache=True):
            raise _bad("no image in the request: send it as multipart field 'image', as a raw "
                       "image/jpeg, image/png or image/webp body, or as JSON {\"image_base64\": ...}",
                       "missing_image")
        raise ApiError(415, "unsupported_media_type",
                       "the request has a body but no Content-Type; use multipart/form-data, "
                       "image/jpeg, image/png, image/webp or application/json")
    raise ApiError(415, "unsupported_media_type",
                   f"Content-Type {mimetype} is not supported; use multipart/form-data (field 'image'), "
                   f"image/jpeg, image/png, image/webp, application/octet-stream or application/json")


def _read_multipart() -> tuple[bytes, dict[str, Any]]:
    files, form = request.files, request.form
    unknown = sorted((set(files) | set(form)) - {"image", *OPTIONS})
    if unknown:
        raise _bad(f"unknown form field(s) {', '.join(map(repr, unknown))}; send the picture as file field "
                   f"'image' and options as fields {', '.join(OPTIONS)}", "unknown_field")
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
    raw = request.get_data(cache=True)
    if json_depth(raw) > MAX_JSON_DEPTH:
        raise _bad('the JSON body is nested too deeply; it must be an object such as {"image_base64": "..."}',
                   "invalid_json")
    body = request.get_json(silent=True)
    if body is None:
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


def _parse_options(body_options: Mapping[str, Any], cfg: ServeConfig, detectors: tuple[str, ...]) -> Options:
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
        max_faces = int(_number(raw["max_faces"], "max_faces", int))
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


def _box_area(face: Mapping[str, Any]) -> float:
    box = face.get("box")
    try:
        if isinstance(box, Mapping):
            return float(box.get("w", box.get("width", 0))) * float(box.get("h", box.get("height", 0)))
        if isinstance(box, (list, tuple)) and len(box) == 4:
            return float(box[2]) * float(box[3])
    except (TypeError, ValueError):
        pass
    return 0.0


@bp.post("/v1/emotions")
def emotions() -> Response:
    cfg, pools, metrics = _config(), _pools(), _metrics()
    data, body_options = _read_input()
    options = _parse_options(body_options, cfg, pools.detectors)

    t_decode = time.perf_counter()
    try:
        image = decode_image(data, cfg.max_pixels)
    except ImageRejected as exc:
        raise ApiError(exc.status, exc.code, exc.message) from None
    del data
    t_detect = time.perf_counter()
    try:
        with pools.lease(options.detector) as recognizer:
            t_detect = time.perf_counter()
            found = recognizer.detect(image.rgb, color="rgb")
            t_done = time.perf_counter()
            labels = [str(label) for label in recognizer.labels]
            card = getattr(recognizer, "card", None) or {}
    except PoolBusy as exc:
        raise ApiError(503, "busy", f"the server is busy: {exc}; retry shortly", {"Retry-After": "1"}) from None
    except RecognizerUnavailable as exc:
        log.error("%s", exc)
        raise ApiError(503, "detector_unavailable", str(exc)) from None

    faces = [face.to_dict() for face in found]
    for face in faces:
        if isinstance(face.get("confidence"), (int, float)):
            face["uncertain"] = bool(face["confidence"] < options.threshold)
    faces.sort(key=_box_area, reverse=True)  # largest first; stable for equal sizes
    faces = faces[: options.max_faces]

    metrics.inc("nasfer_images_processed_total", {"detector": options.detector})
    metrics.inc("nasfer_faces_detected_total", {"detector": options.detector}, len(faces))
    metrics.observe("nasfer_faces_per_image", len(faces))
    metrics.observe("nasfer_inference_duration_seconds", t_done - t_detect, {"detector": options.detector})
    for face in faces:
        if face.get("label") in labels:
            metrics.inc("nasfer_predictions_total", {"label": face["label"]})

    total = time.perf_counter() - g.start
    return jsonify({
        "faces": faces,
        "image": {"width": image.width, "height": image.height},
        "detector": options.detector,
        "threshold": options.threshold,
        "model": {"name": str(card.get("name") or "unnamed"), "labels": labels},
        "timing_ms": {
            "decode": round((t_detect - t_decode) * 1000, 2),
            "detect_classify": round((t_done - t_detect) * 1000, 2),
            "total": round(total * 1000, 2),
        },
    })


# --------------------------------------------------------------------------------------------
# Operations
# --------------------------------------------------------------------------------------------
@bp.get("/healthz")
def healthz() -> Response:
    return jsonify({"status": "ok"})


@bp.get("/readyz")
def readyz() -> Response:
    cfg, pools = _config(), _pools()
    loaded = pools.loaded()
    if cfg.detector not in loaded:
        raise ApiError(503, "not_ready", f"the model with detector {cfg.detector!r} is not loaded yet")
    queued = int(request.environ.get("nasfer.queued_requests", 0))
    if queued > SATURATED_QUEUE_PER_THREAD * cfg.threads:
        raise ApiError(503, "saturated", f"{queued} requests are waiting for this worker's {cfg.threads} "
                                         f"thread(s); send new work elsewhere for now", {"Retry-After": "1"})
    card = getattr(pools.any(cfg.detector), "card", None) or {}
    return jsonify({
        "status": "ready",
        "model": str(card.get("name") or "unnamed"),
        "detectors": {"default": cfg.detector, "available": list(pools.detectors), "loaded": loaded},
        "uptime_s": round(time.time() - _state()["started"], 1),
    })


@bp.get("/v1/model")
def model_card() -> Response:
    cfg, pools = _config(), _pools()
    recognizer = pools.any(cfg.detector)
    card = dict(getattr(recognizer, "card", None) or {})
    card.setdefault("name", "unnamed")
    card.setdefault("labels", [str(label) for label in getattr(recognizer, "labels", ())])
    return jsonify(card)


@bp.get("/metrics")
def metrics() -> Response:
    return Response(_metrics().render(), content_type="text/plain; version=0.0.4; charset=utf-8")


@bp.get("/openapi.json")
def openapi() -> Response:
    return jsonify(_spec())


@bp.get("/docs")
def docs() -> Response:
    from .openapi import curl_examples

    return _html(render_template("docs.html", spec=_spec(), version=_asset_version(),
                                 curls=curl_examples(_public_base(_config()))))


def _public_base(cfg: ServeConfig) -> str:
    """The server's own address for the /docs examples: from its configuration, never from the
    request's Host header (a reflected header would let a link or cache poison the page)."""
    host = "127.0.0.1" if cfg.host in ("0.0.0.0", "") else "[::1]" if cfg.host == "::" else cfg.host
    return f"http://{bind_address(host, cfg.port)}"


@bp.app_template_filter("md")
def _markdown_lite(text: Any) -> Markup:
    """Escape `text` and render its `code` spans (all the Markdown the OpenAPI descriptions use);
    a sentence gets its closing full stop so appended constraints read well."""
    html = str(escape(str(text or "").strip()))
    html = re.sub(r"`([^`]+)`", r"<code>\1</code>", html)
    if html and html[-1] not in ".!?:)":
        html += "."
    return Markup(html)


def _spec() -> dict[str, Any]:
    state = _state()
    if "openapi" not in state:
        from .openapi import build_spec

        cfg, pools = state["config"], state["pools"]
        recognizer = pools.any(cfg.detector)
        state["openapi"] = build_spec(cfg, labels=[str(x) for x in getattr(recognizer, "labels", ())],
                                      detectors=list(pools.detectors), max_faces=max_faces_cap(cfg))
    return state["openapi"]


# --------------------------------------------------------------------------------------------
# Web client (PWA)
# --------------------------------------------------------------------------------------------
def _asset_version() -> str:
    """Hash of the static files: changes whenever a deploy changes the web client."""
    state = _state()
    if "asset_version" not in state:
        digest = hashlib.sha256()
        for path in sorted(p for p in STATIC.rglob("*") if p.is_file()):
            digest.update(path.relative_to(STATIC).as_posix().encode())
            digest.update(path.read_bytes())
        for path in sorted((STATIC.parent / "templates").glob("*")):
            digest.update(path.read_bytes())
        state["asset_version"] = digest.hexdigest()[:12]
    return state["asset_version"]


def _html(body: str) -> Response:
    response = Response(body, mimetype="text/html")
    response.headers["Content-Security-Policy"] = (
        "default-src 'self'; img-src 'self' blob: data:; media-src 'self' blob: mediastream:; "
        "style-src 'self'; script-src 'self'; connect-src 'self'; worker-src 'self'; manifest-src 'self'; "
        "frame-ancestors 'none'; base-uri 'self'; form-action 'self'"
    )
    response.headers["Permissions-Policy"] = "camera=(self), microphone=(), geolocation=()"
    response.headers["Cache-Control"] = "no-cache"
    return response


@bp.get("/")
def index() -> Response:
    cfg = _config()
    return _html(render_template("index.html", version=_asset_version(),
                                 max_upload_mb=cfg.max_upload_mb, detector=cfg.detector))


@bp.get("/sw.js")
def service_worker() -> Response:
    body = render_template("sw.js", version=_asset_version())
    response = Response(body, mimetype="text/javascript")
    response.headers["Cache-Control"] = "no-cache"
    response.headers["Service-Worker-Allowed"] = "/"
    return response


@bp.get("/manifest.webmanifest")
def manifest() -> Response:
    response = send_from_directory(STATIC, "manifest.webmanifest", mimetype="application/manifest+json")
    return response


@bp.get("/favicon.ico")
def favicon() -> Response:
    return send_from_directory(STATIC / "icons", "icon-192.png", mimetype="image/png")
