"""The Flask service's documentation and web-client shell: /openapi.json (valid, complete, matching
real responses), /docs, the index page, PWA manifest, service worker and icons."""

from __future__ import annotations

import io
import json
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from fixtures_service import schema_validator


# ------------------------------------------------------------------------------------------------
# OpenAPI and docs
# ------------------------------------------------------------------------------------------------
def test_schema_validator_catches_mismatches(client, jpeg):
    import jsonschema_rs
    spec = client.get("/openapi.json").get_json()
    body = client.post("/v1/emotions", data=jpeg, content_type="image/jpeg").get_json()
    body["faces"][0]["box"] = [1, 2, 3]
    with pytest.raises(jsonschema_rs.ValidationError):
        schema_validator(spec, "EmotionsResponse").validate(body)
    with pytest.raises(jsonschema_rs.ValidationError):
        schema_validator(spec, "Error").validate({"error": {"code": "x"}})


def test_openapi_document_is_valid_and_lists_every_route(client):
    spec = client.get("/openapi.json").get_json()
    assert spec["openapi"].startswith("3.")
    from openapi_spec_validator import validate

    served = {re.sub(r"<(?:\w+:)?(\w+)>", r"{\1}", rule.rule) for rule in client.application.url_map.iter_rules()}
    assert set(spec["paths"]) == served  # every route, the web client's files included
    validate(spec)
    # what the HTTP layer answers before the app (a body not sent in time) is documented too (review: no 408)
    assert {"408", "413"} <= set(spec["paths"]["/v1/emotions"]["post"]["responses"])


def test_openapi_schemas_match_real_responses(client, make_app, jpeg):
    spec = client.get("/openapi.json").get_json()
    body = client.post("/v1/emotions", data=jpeg, content_type="image/jpeg").get_json()
    schema_validator(spec, "EmotionsResponse").validate(body)
    schema_validator(spec, "Error").validate(client.post("/v1/emotions").get_json())
    schema_validator(spec, "Ready").validate(client.get("/readyz").get_json())
    schema_validator(spec, "Health").validate(client.get("/healthz").get_json())
    schema_validator(spec, "ModelCard").validate(client.get("/v1/model").get_json())
    example = spec["paths"]["/v1/emotions"]["post"]["responses"]["200"]["content"]["application/json"]["example"]
    schema_validator(spec, "EmotionsResponse").validate(example)


def test_docs_page_documents_every_route_and_needs_no_cdn(client):
    r = client.get("/docs")
    html = r.get_data(as_text=True)
    assert r.status_code == 200 and r.content_type.startswith("text/html")
    for path in ("/v1/emotions", "/v1/model", "/healthz", "/readyz", "/metrics", "/openapi.json"):
        assert path in html
    assert "curl -s -F image=@photo.jpg http://127.0.0.1:8000/v1/emotions" in html
    assert not re.search(r'(src|href)="(https?:)?//', html), "external asset on /docs"
    for ref in re.findall(r'(?:src|href)="([^"#]+)"', html):
        if not ref.startswith(("http", "mailto")):
            assert client.get("/" + ref.lstrip("./")).status_code == 200, ref


# ------------------------------------------------------------------------------------------------
# Web client shell
# ------------------------------------------------------------------------------------------------
def test_index_page_and_all_its_assets_are_served_locally(client):
    r = client.get("/")
    html = r.get_data(as_text=True)
    assert r.status_code == 200 and "text/html" in r.content_type
    assert "default-src 'self'" in r.headers["Content-Security-Policy"]
    assert 'capture="user"' in html and 'type="file"' in html and 'id="shutter"' in html
    assert not re.search(r'(src|href)="(https?:)?//', html), "external asset on /"
    refs = re.findall(r'(?:src|href)="([^"#]+)"', html)
    assert any("app.js" in ref for ref in refs) and any("manifest.webmanifest" in ref for ref in refs)
    for ref in refs:
        assert client.get("/" + ref).status_code == 200, ref


def test_pwa_manifest_icons_and_service_worker(client):
    r = client.get("/manifest.webmanifest")
    assert r.status_code == 200 and r.content_type.startswith("application/manifest+json")
    manifest = json.loads(r.get_data(as_text=True))
    assert manifest["start_url"] and manifest["display"] == "standalone"
    sizes = set()
    for icon in manifest["icons"]:
        got = client.get("/" + icon["src"])
        assert got.status_code == 200 and got.content_type == "image/png"
        img = Image.open(io.BytesIO(got.data))
        assert f"{img.width}x{img.height}" == icon["sizes"]
        sizes.add(img.width)
    assert {192, 512} <= sizes
    sw = client.get("/sw.js")
    assert sw.status_code == 200 and "javascript" in sw.content_type
    text = sw.get_data(as_text=True)
    version = re.search(r'nasfer-shell-([0-9a-f]{12})', text).group(1)
    assert f"app.js?v={version}" in client.get("/").get_data(as_text=True)
    assert client.get("/favicon.ico").content_type == "image/png"


def test_icons_script_reproduces_the_committed_icons(tmp_path):
    script = Path(__file__).resolve().parents[1] / "scripts" / "make_icons.py"
    subprocess.run([sys.executable, str(script), "--out", str(tmp_path)], check=True, capture_output=True)
    committed = Path(__file__).resolve().parents[1] / "src" / "nasfer" / "service" / "static" / "icons"
    for size in (192, 512):
        new = np.asarray(Image.open(tmp_path / f"icon-{size}.png").convert("RGB"), dtype=np.int16)
        old = np.asarray(Image.open(committed / f"icon-{size}.png").convert("RGB"), dtype=np.int16)
        assert new.shape == old.shape == (size, size, 3)
        assert np.abs(new - old).max() <= 2
