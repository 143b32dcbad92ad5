"""The OpenAPI 3 description of the service, built from the running configuration.

It is the contract the fuzz tests hold the service to: every status code a route can answer is
listed, and every JSON answer has a schema (additionalProperties false where the shape is ours).
"""

from __future__ import annotations

from typing import Any

from .config import ServeConfig
from .imaging import MIME_TYPES

try:
    from importlib.metadata import version as _pkg_version

    VERSION = _pkg_version("nasfer")
except Exception:  # pragma: no cover - running from a source tree without metadata
    VERSION = "0.0.0"


def _ref(name: str) -> dict[str, str]:
    return {"$ref": f"#/components/schemas/{name}"}


def _json(schema: dict[str, Any], example: Any = None) -> dict[str, Any]:
    content: dict[str, Any] = {"schema": schema}
    if example is not None:
        content["example"] = example
    return {"application/json": content}


def _error(description: str) -> dict[str, Any]:
    return {"description": description, "headers": {"X-Request-ID": {"$ref": "#/components/headers/RequestId"}},
            "content": _json(_ref("Error"))}


def _ok(description: str, content: dict[str, Any]) -> dict[str, Any]:
    return {"description": description, "headers": {"X-Request-ID": {"$ref": "#/components/headers/RequestId"}},
            "content": content}


def face_schema(labels: list[str]) -> dict[str, Any]:
    label_schema: dict[str, Any] = {"type": "string"}
    if labels:
        label_schema["enum"] = labels
    score = {"type": "number", "minimum": 0, "maximum": 1}
    return {
        "type": "object",
        "description": "One detected face: where it is and how likely each emotion is.",
        "required": ["box", "detector_score", "landmarks", "scores", "label", "confidence", "uncertain"],
        "properties": {
            "box": {"type": "array", "description": "x, y, width, height in image pixels (origin top left)",
                    "items": {"type": "integer"}, "minItems": 4, "maxItems": 4, "example": [212, 96, 180, 180]},
            "detector_score": {"type": "number", "nullable": True,
                               "description": "the face detector's own confidence, when it has one"},
            "landmarks": {"type": "array", "nullable": True,
                          "description": "facial landmarks (x, y) when the detector gives them (YuNet: eyes, "
                                         "nose tip, mouth corners)",
                          "items": {"type": "array", "items": {"type": "number"}, "minItems": 2, "maxItems": 2}},
            "scores": {"type": "object", "description": "probability of every emotion label (they sum to 1)",
                       "additionalProperties": score,
                       **({"required": labels, "properties": {k: score for k in labels}} if labels else {})},
            "label": {**label_schema, "description": "the most likely emotion"},
            "confidence": {**score, "description": "the probability of `label`"},
            "uncertain": {"type": "boolean", "description": "confidence is below the request's threshold"},
        },
    }


def build_spec(cfg: ServeConfig, labels: list[str], detectors: list[str], max_faces: int) -> dict[str, Any]:
    """OpenAPI 3.0 document for a service running with `cfg`."""
    option_props = {
        "detector": {"type": "string", "enum": detectors, "default": cfg.detector,
                     "description": "face detector for this request"},
        "threshold": {"type": "number", "minimum": 0, "maximum": 1, "default": cfg.threshold,
                      "description": "faces whose top probability is below this are marked uncertain"},
        "max_faces": {"type": "integer", "minimum": 1, "maximum": max_faces, "default": max_faces,
                      "description": "return at most this many faces, largest first"},
    }
    example = {
        "faces": [{
            "box": [212, 96, 180, 180], "detector_score": None, "landmarks": None,
            "scores": {label: round(p, 3) for label, p in zip(labels, [0.02, 0.0, 0.03, 0.86, 0.02, 0.03, 0.04])},
            "label": labels[3] if len(labels) > 3 else (labels[0] if labels else "happy"),
            "confidence": 0.86, "uncertain": False,
        }],
        "image": {"width": 640, "height": 480},
        "detector": cfg.detector,
        "threshold": cfg.threshold,
        "model": {"name": "default", "labels": labels},
        "timing_ms": {"decode": 3.1, "detect_classify": 41.7, "total": 46.2},
    }
    upload_errors = {
        "400": _error("bad request: no image, empty image, wrong field names, invalid base64 or option values"),
        "413": _error(f"the body is over {cfg.max_upload_mb:g} MB, or the image has more than "
                      f"{cfg.max_pixels:,} pixels"),
        "415": _error("unsupported Content-Type, or the bytes are not a JPEG, PNG or WebP image"),
        "422": _error("a JPEG/PNG/WebP that cannot be decoded (truncated or corrupt)"),
        "500": _error("unexpected server error (logged with the request id; never a traceback)"),
        "503": _error("the server is busy or a detector could not be loaded; retry later"),
    }
    binary = {"schema": {"type": "string", "format": "binary"}}
    spec: dict[str, Any] = {
        "openapi": "3.0.3",
        "info": {
            "title": "nasfer emotion recognition API",
            "version": VERSION,
            "description": (
                "Finds the faces in a photo and tells, for each, how likely each of the seven basic "
                "emotions is. Send the photo as multipart field `image`, as a raw image body, or as "
                "JSON `{\"image_base64\": ...}`. Errors are JSON `{\"error\": {\"code\", \"message\"}}`. "
                "Every response carries `X-Request-ID` (yours, when you send a sane one)."
            ),
        },
        "paths": {
            "/v1/emotions": {
                "post": {
                    "operationId": "detectEmotions",
                    "summary": "Detect faces and classify their emotions",
                    "description": (
                        f"Accepts JPEG, PNG and WebP up to {cfg.max_upload_mb:g} MB and {cfg.max_pixels:,} pixels. "
                        "EXIF orientation is applied, so boxes are in the upright picture's pixels. "
                        "Options go in the query string, or in the form / JSON body (not both)."
                    ),
                    "parameters": [
                        {"name": name, "in": "query", "required": False, "schema": schema,
                         "description": schema["description"]}
                        for name, schema in option_props.items()
                    ],
                    "requestBody": {
                        "required": True,
                        "content": {
                            "multipart/form-data": {
                                "schema": {
                                    "type": "object", "required": ["image"], "additionalProperties": False,
                                    "properties": {"image": {"type": "string", "format": "binary",
                                                             "description": "the photo"}, **option_props},
                                },
                                "encoding": {"image": {"contentType": ", ".join(MIME_TYPES)}},
                            },
                            **{mime: binary for mime in MIME_TYPES},
                            "application/octet-stream": binary,
                            "application/json": {
                                "schema": {
                                    "type": "object", "required": ["image_base64"], "additionalProperties": False,
                                    "properties": {
                                        "image_base64": {"type": "string",
                                                         "description": "the photo, base64 (a data: URL is "
                                                                        "accepted too)"},
                                        **option_props,
                                    },
                                },
                            },
                        },
                    },
                    "responses": {
                        "200": _ok("faces found (possibly none) with their emotion scores",
                                   _json(_ref("EmotionsResponse"), example)),
                        **upload_errors,
                    },
                }
            },
            "/v1/model": {
                "get": {
                    "operationId": "getModel",
                    "summary": "The loaded model's card",
                    "description": "Name, labels, preprocessing, architecture, training and measured metrics "
                                   "of the emotion classifier this server runs.",
                    "responses": {"200": _ok("the model card", _json(_ref("ModelCard")))},
                }
            },
            "/healthz": {
                "get": {
                    "operationId": "health",
                    "summary": "Liveness: the process answers",
                    "responses": {"200": _ok("alive", _json(_ref("Health")))},
                }
            },
            "/readyz": {
                "get": {
                    "operationId": "ready",
                    "summary": "Readiness: the model is loaded and requests can be served",
                    "responses": {"200": _ok("ready", _json(_ref("Ready"))),
                                  "503": _error("not ready yet")},
                }
            },
            "/metrics": {
                "get": {
                    "operationId": "metrics",
                    "summary": "Prometheus metrics (text exposition format 0.0.4)",
                    "description": "Request counts by route/method/status, latency histograms, faces found, "
                                   "predictions by label; summed over all worker processes.",
                    "responses": {"200": _ok("metrics", {"text/plain": {"schema": {"type": "string"}}})},
                }
            },
            "/openapi.json": {
                "get": {
                    "operationId": "openapi",
                    "summary": "This document",
                    "responses": {"200": _ok("OpenAPI 3 document", _json({"type": "object"}))},
                }
            },
            "/docs": {
                "get": {
                    "operationId": "docs",
                    "summary": "Human-readable API documentation",
                    "responses": {"200": _ok("HTML page", {"text/html": {"schema": {"type": "string"}}})},
                }
            },
        },
        "components": {
            "headers": {
                "RequestId": {"description": "request id: the client's X-Request-ID if it is a sane token, "
                                             "else a new one; it appears in the server's log lines",
                              "schema": {"type": "string"}},
            },
            "schemas": {
                "Error": {
                    "type": "object", "required": ["error"], "additionalProperties": False,
                    "properties": {"error": {
                        "type": "object", "required": ["code", "message"], "additionalProperties": False,
                        "properties": {"code": {"type": "string", "description": "machine-readable, e.g. "
                                                                                  "invalid_image"},
                                       "message": {"type": "string", "description": "one line for humans"}},
                    }},
                },
                "Face": face_schema(labels),
                "EmotionsResponse": {
                    "type": "object", "additionalProperties": False,
                    "required": ["faces", "image", "detector", "threshold", "model", "timing_ms"],
                    "properties": {
                        "faces": {"type": "array", "items": _ref("Face"), "maxItems": max_faces,
                                  "description": "largest first; empty when no face is found"},
                        "image": {"type": "object", "required": ["width", "height"], "additionalProperties": False,
                                  "properties": {"width": {"type": "integer", "minimum": 1},
                                                 "height": {"type": "integer", "minimum": 1}},
                                  "description": "size of the upright (EXIF-rotated) picture"},
                        "detector": {"type": "string", "enum": detectors},
                        "threshold": {"type": "number", "minimum": 0, "maximum": 1},
                        "model": {"type": "object", "required": ["name", "labels"], "additionalProperties": False,
                                  "properties": {"name": {"type": "string"},
                                                 "labels": {"type": "array", "items": {"type": "string"}}}},
                        "timing_ms": {
                            "type": "object", "required": ["decode", "detect_classify", "total"],
                            "additionalProperties": False,
                            "properties": {k: {"type": "number", "minimum": 0}
                                           for k in ("decode", "detect_classify", "total")},
                            "description": "server-side time: image decoding, detection + classification, "
                                           "and the whole request",
                        },
                    },
                },
                "ModelCard": {
                    "type": "object", "required": ["name", "labels"], "additionalProperties": True,
                    "properties": {"name": {"type": "string"},
                                   "labels": {"type": "array", "items": {"type": "string"}},
                                   "format": {"type": "string"},
                                   "preprocessing": {"type": "object"},
                                   "architecture": {"type": "object"},
                                   "metrics": {"type": "object"},
                                   "limitations": {"type": "array", "items": {"type": "string"}}},
                },
                "Health": {"type": "object", "required": ["status"], "additionalProperties": False,
                           "properties": {"status": {"type": "string", "enum": ["ok"]}}},
                "Ready": {
                    "type": "object", "required": ["status", "model", "detectors"], "additionalProperties": False,
                    "properties": {
                        "status": {"type": "string", "enum": ["ready"]},
                        "model": {"type": "string"},
                        "detectors": {"type": "object", "required": ["default", "available", "loaded"],
                                      "additionalProperties": False,
                                      "properties": {"default": {"type": "string"},
                                                     "available": {"type": "array", "items": {"type": "string"}},
                                                     "loaded": {"type": "array", "items": {"type": "string"}}}},
                        "uptime_s": {"type": "number", "minimum": 0},
                    },
                },
            },
        },
    }
    return spec


def curl_examples(base: str = "http://127.0.0.1:8000") -> list[tuple[str, str]]:
    """(title, command) pairs shown on /docs."""
    return [
        ("Multipart upload (what the web client sends)",
         f"curl -s -F image=@photo.jpg {base}/v1/emotions"),
        ("Raw JPEG body, with options in the query string",
         f"curl -s -H 'Content-Type: image/jpeg' --data-binary @photo.jpg "
         f"'{base}/v1/emotions?threshold=0.4&max_faces=5'"),
        ("JSON with base64",
         f"printf '{{\"image_base64\": \"%s\"}}' \"$(base64 -w0 photo.jpg)\" | "
         f"curl -s -H 'Content-Type: application/json' --data-binary @- {base}/v1/emotions"),
        ("Model card", f"curl -s {base}/v1/model"),
        ("Health and readiness", f"curl -s {base}/healthz; curl -s {base}/readyz"),
        ("Prometheus metrics", f"curl -s {base}/metrics"),
    ]
