"""HTTP routes: the emotion API, health/readiness, model card, metrics, OpenAPI, docs, web client."""

from __future__ import annotations

import hashlib
import logging
import re
import time
from pathlib import Path
from typing import Any, Mapping

from flask import Blueprint, Response, current_app, g, jsonify, render_template, request, send_from_directory
from markupsafe import Markup, escape

from .app import ApiError
from .config import ServeConfig, bind_address
from .imaging import ImageRejected, decode_image
from .inputs import max_faces_cap, parse_options, read_input
from .metrics import Metrics
from .recognizers import PoolBusy, RecognizerPools, RecognizerUnavailable

log = logging.getLogger("nasfer.service")

bp = Blueprint("nasfer", __name__)

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


# --------------------------------------------------------------------------------------------
# POST /v1/emotions
# --------------------------------------------------------------------------------------------
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
    data, body_options = read_input()
    options = parse_options(body_options, cfg, pools.detectors)

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
            found = recognizer.detect(image.rgb, color="rgb", threshold=options.threshold)
            t_done = time.perf_counter()
            labels = [str(label) for label in recognizer.labels]
            card = getattr(recognizer, "card", None) or {}
    except PoolBusy as exc:
        raise ApiError(503, "busy", f"the server is busy: {exc}; retry shortly", {"Retry-After": "1"}) from None
    except RecognizerUnavailable as exc:
        log.error("%s", exc)
        raise ApiError(503, "detector_unavailable", str(exc)) from None

    faces = [face.to_dict() for face in found]  # `uncertain` from the recognizer: threshold or unclear orientation
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
        **({"hint": found.hint} if not faces and getattr(found, "hint", None) else {}),  # nasfer.runtime.api.Detections
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
    """200 when the model is loaded and this worker's queue is not saturated; 503 otherwise.

    Under `nasfer serve` this and /healthz run on the worker's I/O loop (worker.PROBE_PATHS), not in
    the thread pool, so they must never block; `nasfer.queued_requests` is the pool's queue length
    when the probe arrived (0 under other servers, e.g. `--dev`).
    """
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
