"""`create_app(config, recognizer)`: the Flask application factory.

The emotion recognizer is built here, once per process (gunicorn calls the factory in every worker
after forking), never at import. Tests inject a recognizer (or a factory of them) instead.
"""

from __future__ import annotations

import json
import logging
import time
from pathlib import Path
from typing import Callable

from flask import Flask, Response, g, jsonify, request
from werkzeug.exceptions import HTTPException

from ..errors import ModelError, NasferError
from .config import ServeConfig
from .imaging import configure_pillow
from .logs import configure_logging, request_id_from
from .metrics import Metrics
from .recognizers import Recognizer, RecognizerPools

log = logging.getLogger("nasfer.service")
access_log = logging.getLogger("nasfer.service.access")

HERE = Path(__file__).resolve().parent

#: Detectors that need no model file, offered per request in addition to the configured default.
FILE_FREE_DETECTORS = ("haar", "none")
#: Routes polled by machines: their access lines are logged at DEBUG, not INFO.
QUIET_ROUTES = frozenset({"/healthz", "/readyz", "/metrics"})

#: Longest request target (path and query) accepted; longer: 414.
MAX_TARGET_CHARS = 8190
#: Largest text field of a multipart form (the options are short; only the image may be large).
MAX_FORM_FIELD_BYTES = 1024 * 1024

#: Status code -> error code for HTTP errors raised by Flask/Werkzeug themselves.
HTTP_ERROR_CODES = {
    400: "bad_request", 404: "not_found", 405: "method_not_allowed", 408: "request_timeout",
    411: "length_required", 413: "payload_too_large", 414: "uri_too_long", 415: "unsupported_media_type",
    422: "unprocessable_entity", 429: "too_many_requests", 431: "headers_too_large",
}


class ApiError(Exception):
    """An error answer: HTTP status, machine-readable code, one-line human message."""

    def __init__(self, status: int, code: str, message: str, headers: dict[str, str] | None = None):
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message
        self.headers = headers or {}


def error_response(status: int, code: str, message: str, headers: dict[str, str] | None = None) -> Response:
    response = jsonify({"error": {"code": code, "message": message}})
    response.status_code = status
    for key, value in (headers or {}).items():
        response.headers[key] = value
    return response


def available_detectors(cfg: ServeConfig) -> list[str]:
    """The configured detector first, then the registered ones that need no model file."""
    try:
        from ..runtime.faces import DETECTORS

        registered = list(DETECTORS)
    except ImportError:  # the face module is not importable here: offer the contract's names
        registered = ["haar", "yunet", "none"]
    names = [cfg.detector] + [name for name in FILE_FREE_DETECTORS if name in registered]
    return list(dict.fromkeys(names))


def default_recognizer_factory(cfg: ServeConfig) -> Callable[[str], Recognizer]:
    """`detector name -> nasfer.runtime.api.EmotionRecognizer` configured from `cfg`."""

    def make(detector: str) -> Recognizer:
        from ..runtime.api import EmotionRecognizer

        return EmotionRecognizer(
            model=cfg.model,
            detector=detector,
            detector_model=cfg.detector_model if detector == cfg.detector else None,
            threshold=cfg.threshold,
            threads=1,  # one inference thread per worker thread: workers x threads already fill the cores
            max_faces=cfg.max_faces or None,
        )

    return make


def create_app(config: ServeConfig | None = None, recognizer: Recognizer | None = None, *,
               recognizer_factory: Callable[[str], Recognizer] | None = None,
               metrics: Metrics | None = None) -> Flask:
    """Build the service.

    config: ServeConfig (defaults if None). recognizer: a ready recognizer for the configured
    detector (tests inject fakes; the real one is built from config otherwise). recognizer_factory:
    `detector -> recognizer` for the other detectors a request may pick. metrics: the registry
    (default: one shared with the other gunicorn workers when PROMETHEUS_MULTIPROC_DIR is set, as
    `nasfer serve` does; else this app's own).
    """
    cfg = (config or ServeConfig()).validate()
    configure_logging(cfg.log_level)
    configure_pillow(cfg.max_pixels)

    app = Flask(__name__, static_folder=str(HERE / "static"), template_folder=str(HERE / "templates"))
    app.config.update(
        MAX_CONTENT_LENGTH=cfg.max_upload_bytes,
        MAX_FORM_MEMORY_SIZE=min(cfg.max_upload_bytes, MAX_FORM_FIELD_BYTES),  # text fields: options only
    )
    app.json.sort_keys = False  # keep documented field order
    app.json.compact = True

    factory = recognizer_factory or default_recognizer_factory(cfg)
    pools = RecognizerPools(factory, available_detectors(cfg), size=cfg.threads, wait_s=float(cfg.timeout))
    if recognizer is not None:
        pools.add(cfg.detector, recognizer, exclusive=True)
    else:
        pools.warm(cfg.detector)  # load the model now: a broken model fails the worker's boot, loudly

    app.extensions["nasfer"] = {
        "config": cfg,
        "pools": pools,
        "metrics": metrics or Metrics.from_environment(),
        "started": time.time(),
    }
    _record_model_info(app)

    from .routes import bp

    app.register_blueprint(bp)
    _install_hooks(app, cfg)
    _install_error_handlers(app)
    log.info("service ready: model %s, detectors %s, max upload %.3g MB, max %d pixels",
             _model_name(app), ", ".join(pools.detectors), cfg.max_upload_mb, cfg.max_pixels)
    return app


def _model_name(app: Flask) -> str:
    state = app.extensions["nasfer"]
    rec = state["pools"].any(state["config"].detector)
    card = getattr(rec, "card", None) or {}
    return str(card.get("name") or (Path(state["config"].model).stem if state["config"].model else "default"))


def _record_model_info(app: Flask) -> None:
    state = app.extensions["nasfer"]
    state["metrics"].set("nasfer_model_info", 1, {"model": _model_name(app),
                                                  "detector": state["config"].detector})


def _route_label() -> str:
    rule = request.url_rule
    return rule.rule if rule is not None else "unmatched"


def _install_hooks(app: Flask, cfg: ServeConfig) -> None:
    origins = cfg.allowed_origins
    metrics: Metrics = app.extensions["nasfer"]["metrics"]

    @app.before_request
    def _start() -> None:
        g.start = time.perf_counter()
        g.request_id = request_id_from(request.headers.get("X-Request-ID"))
        if len(request.full_path) > MAX_TARGET_CHARS:
            raise ApiError(414, "uri_too_long", f"the request target is longer than {MAX_TARGET_CHARS} characters")

    @app.after_request
    def _finish(response: Response) -> Response:
        request_id = getattr(g, "request_id", None) or request_id_from(None)
        response.headers["X-Request-ID"] = request_id
        response.headers.setdefault("X-Content-Type-Options", "nosniff")
        response.headers.setdefault("Referrer-Policy", "no-referrer")
        if origins:
            _cors(response, origins)
        if response.status_code in (301, 302, 307, 308) and response.mimetype == "text/html":
            _json_redirect(response)  # Werkzeug's own redirects (e.g. // in a path) are HTML
        elapsed = time.perf_counter() - getattr(g, "start", time.perf_counter())
        route = _route_label()
        method = request.method if request.method in ("GET", "POST", "HEAD", "OPTIONS") else "other"
        metrics.inc("nasfer_http_requests_total",
                    {"route": route, "method": method, "status": response.status_code})
        metrics.observe("nasfer_http_request_duration_seconds", elapsed, {"route": route})
        level = logging.DEBUG if route in QUIET_ROUTES and response.status_code < 400 else logging.INFO
        target = request.full_path.rstrip("?") if request.query_string else request.path
        access_log.log(level, '%s "%s %s" %d %d %.1fms', _client_address(), _printable(request.method, 20),
                       _printable(target, 300), response.status_code, response.content_length or 0,
                       elapsed * 1000)
        return response


def _json_redirect(response: Response) -> None:
    """Give a redirect raised by the routing layer the service's JSON error body."""
    location = response.headers.get("Location", "")
    body = {"error": {"code": "moved_permanently" if response.status_code in (301, 308) else "redirect",
                      "message": f"this resource is at {location}"}}
    response.set_data(json.dumps(body, separators=(",", ":")))
    response.mimetype = "application/json"


def _client_address() -> str:
    """The peer's address; behind a reverse proxy on this host, the address the proxy saw."""
    remote = request.remote_addr or "-"
    if remote in ("127.0.0.1", "::1") and request.headers.get("X-Forwarded-For"):
        return _printable(request.access_route[-1], 64)
    return remote


def _printable(text: str, limit: int) -> str:
    """`text` safe for one log line: control characters escaped (no forged lines), length capped."""
    out = "".join(c if c.isprintable() else repr(c)[1:-1] for c in text[:limit])
    return out + ("..." if len(text) > limit else "")


def _cors(response: Response, origins: tuple[str, ...]) -> None:
    origin = request.headers.get("Origin")
    if not origin:
        return
    if "*" in origins:
        response.headers["Access-Control-Allow-Origin"] = "*"
    elif origin.rstrip("/") in origins:
        response.headers["Access-Control-Allow-Origin"] = origin
        response.vary.add("Origin")
    else:
        return
    response.headers["Access-Control-Expose-Headers"] = "X-Request-ID"
    if request.method == "OPTIONS" and request.headers.get("Access-Control-Request-Method"):
        response.headers["Access-Control-Allow-Methods"] = "GET, POST, OPTIONS"
        response.headers["Access-Control-Allow-Headers"] = "Content-Type, X-Request-ID"
        response.headers["Access-Control-Max-Age"] = "600"


def _install_error_handlers(app: Flask) -> None:
    @app.errorhandler(ApiError)
    def _api_error(exc: ApiError) -> Response:
        return error_response(exc.status, exc.code, exc.message, exc.headers)

    @app.errorhandler(HTTPException)
    def _http_error(exc: HTTPException) -> Response:
        status = exc.code or 500
        code = HTTP_ERROR_CODES.get(status, "http_error")
        message = _http_message(exc, status)
        response = error_response(status, code, message)
        for key, value in exc.get_headers():  # e.g. Allow on 405
            if key.lower() != "content-type":
                response.headers[key] = value
        return response

    @app.errorhandler(NasferError)
    def _nasfer_error(exc: NasferError) -> Response:
        if isinstance(exc, ModelError):
            log.error("model error: %s", exc)
            return error_response(503, "model_unavailable", str(exc))
        return error_response(422, "invalid_image", str(exc))

    @app.errorhandler(Exception)
    def _unexpected(exc: Exception) -> Response:
        request_id = getattr(g, "request_id", "-")
        log.exception("unhandled error in %s %s (request id %s)", request.method, request.path, request_id)
        return error_response(500, "internal_error",
                              f"internal server error (request id {request_id}); it has been logged")


def _http_message(exc: HTTPException, status: int) -> str:
    cfg: ServeConfig | None = None
    try:
        from flask import current_app

        cfg = current_app.extensions["nasfer"]["config"]
    except Exception:  # pragma: no cover - outside an app context
        pass
    if status == 413 and cfg is not None:
        if request.content_length is not None and request.content_length <= cfg.max_upload_bytes:
            # The body is within the limit: Werkzeug's form parser refused one text field or too many parts.
            return (f"a form text field is larger than {MAX_FORM_FIELD_BYTES // 1024} KB, or the form has too many "
                    f"parts; send the picture as file field 'image' and options as short text fields")
        return f"the request body is larger than the {cfg.max_upload_mb:g} MB limit"
    if status == 404:
        return f"no such endpoint: {request.path} (see /docs)"
    if status == 405:
        return f"{request.method} is not allowed on {request.path}"
    description = (exc.description or exc.name or "error").strip()
    return " ".join(description.split())
