"""The OpenAPI 3 description of the service: `openapi.json` beside this module, completed from the
running configuration.

The document is data (edit `openapi.json`; tests validate it with openapi-spec-validator and check
that it lists every route). What depends on the server is filled in here: the limits quoted in
descriptions (`{max_upload_mb}`, `{max_pixels}`, `{version}` in the text), the detectors a request
may choose, the default threshold, the `max_faces` cap and the model's labels. It is the contract
the fuzz tests hold the service to: every status code a route can answer is listed, and every JSON
answer has a schema (additionalProperties false where the shape is ours).
"""

from __future__ import annotations

import copy
import functools
import json
from importlib import resources
from typing import Any, Iterator

from .config import ServeConfig

DOCUMENT = "openapi.json"
OPTIONS = ("detector", "threshold", "max_faces")


def version() -> str:
    try:
        from importlib.metadata import version as package_version

        return package_version("nasfer")
    except Exception:  # pragma: no cover - running from a source tree without metadata
        return "0.0.0"


@functools.lru_cache(maxsize=1)
def template() -> dict[str, Any]:
    """The document as stored (parsed once per process; callers get copies)."""
    return json.loads(resources.files(__package__).joinpath(DOCUMENT).read_text(encoding="utf-8"))


def option_schemas(spec: dict[str, Any]) -> Iterator[tuple[str, dict[str, Any]]]:
    """(option name, schema) for every place /v1/emotions takes an option: query, form, JSON."""
    post = spec["paths"]["/v1/emotions"]["post"]
    for parameter in post["parameters"]:
        yield parameter["name"], parameter["schema"]
    for mime in ("multipart/form-data", "application/json"):
        properties = post["requestBody"]["content"][mime]["schema"]["properties"]
        for name in OPTIONS:
            yield name, properties[name]


def build_spec(cfg: ServeConfig, labels: list[str], detectors: list[str], max_faces: int) -> dict[str, Any]:
    """OpenAPI 3.0 document for a service running with `cfg` (a new dict each call)."""
    text = json.dumps(template())
    for token, value in (("{max_upload_mb}", f"{cfg.max_upload_mb:g}"), ("{max_pixels}", f"{cfg.max_pixels:,}"),
                         ("{version}", version())):
        text = text.replace(token, value)
    spec = json.loads(text)
    for name, schema in option_schemas(spec):
        if name == "detector":
            schema.update(enum=list(detectors), default=cfg.detector)
        elif name == "threshold":
            schema["default"] = cfg.threshold
        else:
            schema.update(maximum=max_faces, default=max_faces)

    schemas = spec["components"]["schemas"]
    schemas["EmotionsResponse"]["properties"]["faces"]["maxItems"] = max_faces
    schemas["EmotionsResponse"]["properties"]["detector"]["enum"] = list(detectors)
    face = schemas["Face"]["properties"]
    score = copy.deepcopy(face["confidence"])
    score.pop("description", None)
    if labels:
        face["label"]["enum"] = list(labels)
        face["scores"].update(required=list(labels), properties={k: copy.deepcopy(score) for k in labels})
    else:
        face["label"].pop("enum", None)
        face["scores"].pop("required", None)
        face["scores"].pop("properties", None)

    example = spec["paths"]["/v1/emotions"]["post"]["responses"]["200"]["content"]["application/json"]["example"]
    shares = [0.02, 0.0, 0.03, 0.86, 0.02, 0.03, 0.04]
    example["faces"][0]["scores"] = {label: p for label, p in zip(labels, shares)}
    example["faces"][0]["label"] = labels[3] if len(labels) > 3 else (labels[0] if labels else "happy")
    example["detector"] = cfg.detector
    example["threshold"] = cfg.threshold
    example["model"]["labels"] = list(labels)
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
