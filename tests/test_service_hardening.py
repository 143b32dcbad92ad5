"""Hostile and odd input through the Flask app (test client): issue 15's faults, each held fixed.

Deep JSON, lying image headers, object reprs in messages, number formats Python accepts but JSON
clients do not mean, oversize form fields, Host reflection, routing-layer errors, readiness under
saturation, metrics that cannot be written, and the one image decoder shared with the Python API.
"""

from __future__ import annotations

import base64
import io
import json
import logging
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from fixtures_service import FakeRecognizer, error_of, png_header_only, post_multipart
from nasfer.runtime import images
from nasfer.errors import ImageError


@pytest.fixture
def app_client(make_app):
    def make(**cfg):
        return make_app(**cfg)[:2]

    return make


@pytest.fixture
def client(make_app):
    return make_app(recognizer=FakeRecognizer())[1]


def lying_jpeg(width: int = 4900, height: int = 4900) -> bytes:
    """A valid 16x16 JPEG (a few hundred bytes) whose SOF header is patched to claim width x height.
    libjpeg pads the missing scan data with grey and Pillow decodes it without an error."""
    buf = io.BytesIO()
    Image.new("L", (16, 16), 90).save(buf, "JPEG", quality=50)
    data = bytearray(buf.getvalue())
    sof = data.index(b"\xff\xc0")
    data[sof + 5:sof + 9] = height.to_bytes(2, "big") + width.to_bytes(2, "big")
    return bytes(data)


# ------------------------------------------------------------------------------------------------
# JSON bodies
# ------------------------------------------------------------------------------------------------
def test_deeply_nested_json_is_a_400_before_parsing(client, caplog):
    body = b"[" * 2000 + b"]" * 2000
    with caplog.at_level(logging.ERROR, logger="nasfer"):
        r = client.post("/v1/emotions", data=body, content_type="application/json")
    assert r.status_code == 400 and error_of(r)["code"] == "invalid_json"
    assert "nested" in error_of(r)["message"]
    assert not [rec for rec in caplog.records if rec.levelno >= logging.ERROR]  # no traceback logged
    deep_object = b'{"image_base64": ' + b'{"a": ' * 3000 + b"1" + b"}" * 3001
    r = client.post("/v1/emotions", data=deep_object, content_type="application/json")
    assert r.status_code == 400 and error_of(r)["code"] == "invalid_json"


def test_json_depth_ignores_brackets_inside_strings():
    from nasfer.service.inputs import json_depth

    assert json_depth(b'{"image_base64": "[[[[[[{{{{", "detector": "a\\"[["}') == 1
    assert json_depth(b'{"max_faces": [1]}') == 2
    assert json_depth(b"[" * 50) == 50
    assert json_depth(b"12") == 0


def test_shallow_wrong_values_keep_their_precise_message(client, jpeg):
    r = client.post("/v1/emotions", json={"image_base64": base64.b64encode(jpeg).decode(), "max_faces": [[1]]})
    assert r.status_code == 400 and error_of(r)["code"] == "invalid_option"


# ------------------------------------------------------------------------------------------------
# Numbers
# ------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("query", ["max_faces=1_0", "max_faces=%D9%A1%D9%A0", "threshold=0_5",
                                   "threshold=%D9%A0.%D9%A5", "max_faces=%EF%BC%95", "threshold=1e", "max_faces=+"])
def test_numbers_must_be_plain_ascii_decimals(client, jpeg, query):
    r = client.post(f"/v1/emotions?{query}", data=jpeg, content_type="image/jpeg")
    assert r.status_code == 400, (query, r.get_data(as_text=True))
    assert error_of(r)["code"] == "invalid_option"


@pytest.mark.parametrize("query,field,value", [("max_faces=%2B3", "faces", 1), ("threshold=.5", "threshold", 0.5),
                                               ("threshold=5e-1", "threshold", 0.5), ("max_faces=07", "faces", 1)])
def test_plain_decimal_numbers_still_work(client, jpeg, query, field, value):
    r = client.post(f"/v1/emotions?{query}", data=jpeg, content_type="image/jpeg")
    assert r.status_code == 200, r.get_data(as_text=True)
    body = r.get_json()
    assert (len(body["faces"]) if field == "faces" else body[field]) == value


# ------------------------------------------------------------------------------------------------
# Images
# ------------------------------------------------------------------------------------------------
def test_jpeg_claiming_more_pixels_than_its_bytes_hold_is_422_without_decoding(make_app, monkeypatch):
    data = lying_jpeg()
    assert len(data) < 700
    assert Image.open(io.BytesIO(data)).size == (4900, 4900)  # Pillow believes the header
    loads = []
    monkeypatch.setattr(Image.Image, "load", lambda self: loads.append(self.size))
    _, client, _ = make_app()
    r = client.post("/v1/emotions", data=data, content_type="image/jpeg")
    assert r.status_code == 422 and error_of(r)["code"] == "invalid_image", r.get_data(as_text=True)
    assert "4900x4900" in error_of(r)["message"]
    assert loads == []  # refused from the header: no pixel was decoded


def test_decode_cost_bound_lets_real_photos_through():
    for fmt, kw in [("JPEG", {"optimize": True}), ("JPEG", {"progressive": True, "optimize": True}),
                    ("PNG", {"optimize": True}), ("WEBP", {"quality": 1}), ("WEBP", {"lossless": True})]:
        for mode in ("L", "RGB"):
            buf = io.BytesIO()
            Image.new(mode, (1500, 1000), 128 if mode == "L" else (20, 128, 200)).save(buf, fmt, **kw)
            rgb = images.decode(buf.getvalue(), 25_000_000)
            assert rgb.shape == (1000, 1500, 3), (fmt, kw, mode)


def test_corrupt_image_messages_carry_no_object_address(client):
    for data in (b"\xff\xd8\xff" + b"garbage" * 10, b"\x89PNG\r\n\x1a\n" + b"\0" * 40, b"RIFF\0\0\0\0WEBPjunk"):
        r = client.post("/v1/emotions", data=data, content_type="application/octet-stream")
        assert r.status_code == 422, r.get_data(as_text=True)
        message = error_of(r)["message"]
        assert " at 0x" not in message and "<_io" not in message, message


def test_bomb_message_states_the_size(make_app):
    _, client, _ = make_app(max_pixels=10_000)
    r = client.post("/v1/emotions", data=png_header_only(100_000, 100_000), content_type="image/png")
    assert r.status_code == 413 and error_of(r)["code"] == "image_too_large"
    message = error_of(r)["message"]
    assert "10000.0 MP" in message and "its size" not in message, message
    r = client.post("/v1/emotions", data=png_header_only(300, 200), content_type="image/png")
    assert r.status_code == 413 and "300x200 = 0.1 MP" in error_of(r)["message"]


def test_api_and_service_share_one_decoder():
    """One definition: the Python API and the service refuse and decode the same way."""
    import nasfer.runtime.api as api
    from nasfer.service.imaging import ImageRejected, decode_image

    assert api._from_bytes is images.decode and api._from_pil is images.from_pil
    img = Image.new("RGB", (40, 20), (10, 200, 10))
    exif = Image.Exif()
    exif[0x0112] = 6
    buf = io.BytesIO()
    img.save(buf, format="JPEG", exif=exif.tobytes())
    np.testing.assert_array_equal(api.load_image(buf.getvalue()), decode_image(buf.getvalue(), 10**6).rgb)
    with pytest.raises(ImageError, match="4900x4900"):
        api.load_image(lying_jpeg())
    with pytest.raises(ImageRejected):
        decode_image(lying_jpeg(), 10**8)


# ------------------------------------------------------------------------------------------------
# Form fields, Host header, routing-layer errors
# ------------------------------------------------------------------------------------------------
def test_a_2mb_form_text_field_is_reported_as_such(client, jpeg):
    r = post_multipart(client, jpeg, threshold="0" * (2 * 1024 * 1024))
    assert r.status_code == 413, r.get_data(as_text=True)
    message = error_of(r)["message"]
    assert "form text field" in message and "10 MB" not in message, message


def test_docs_do_not_reflect_the_host_header(client):
    html = client.get("/docs", headers={"Host": "evil.example:666"}).get_data(as_text=True)
    assert "evil.example" not in html
    assert "http://127.0.0.1:8000/v1/emotions" in html


def test_docs_use_the_configured_address(app_client):
    _, client = app_client(host="0.0.0.0", port=9123)
    assert "http://127.0.0.1:9123/v1/model" in client.get("/docs").get_data(as_text=True)


def test_double_slash_redirect_is_json(client):
    r = client.get("/v1//model")
    assert r.status_code == 308 and r.headers["Location"].endswith("/v1/model")
    assert error_of(r)["code"] == "moved_permanently"


def test_overlong_request_target_is_414_json(client):
    r = client.get("/v1/model?x=" + "a" * 9000)
    assert r.status_code == 414 and error_of(r)["code"] == "uri_too_long"


# ------------------------------------------------------------------------------------------------
# Health and readiness
# ------------------------------------------------------------------------------------------------
def test_readyz_reflects_saturation_and_healthz_does_not(client):
    r = client.get("/readyz", environ_overrides={"nasfer.queued_requests": 500})
    assert r.status_code == 503 and error_of(r)["code"] == "saturated" and r.headers["Retry-After"] == "1"
    assert client.get("/readyz", environ_overrides={"nasfer.queued_requests": 3}).status_code == 200
    assert client.get("/healthz", environ_overrides={"nasfer.queued_requests": 500}).status_code == 200


# ------------------------------------------------------------------------------------------------
# Metrics that cannot be written are logged, and never fail the request
# ------------------------------------------------------------------------------------------------
METRICS_DIRECTORY_GONE = textwrap.dedent("""
    import json, os, shutil
    from fixtures_service import FakeRecognizer, image_bytes
    from nasfer.service.app import create_app
    from nasfer.service.config import ServeConfig

    client = create_app(ServeConfig(), recognizer=FakeRecognizer()).test_client()
    metrics = client.application.extensions["nasfer"]["metrics"]
    shutil.rmtree(os.environ["PROMETHEUS_MULTIPROC_DIR"])  # e.g. a /tmp cleaner
    statuses = [client.post("/v1/emotions", data=image_bytes("JPEG"), content_type="image/jpeg").status_code
                for _ in range(3)]
    print(json.dumps({"statuses": statuses, "errors": metrics.write_errors, "scrape": client.get("/metrics").status_code}))
""")


def test_metrics_that_cannot_be_written_are_logged_and_never_fail_a_request(tmp_path):
    """Under `nasfer serve` a worker writes its metrics to files in PROMETHEUS_MULTIPROC_DIR (prometheus_client's
    multiprocess mode, chosen at its import: hence a fresh interpreter). Before prometheus_client, failed
    snapshot writes were counted in nasfer_metrics_flush_errors_total; there is no snapshot any more, and a
    count kept in the store that fails could not be written either: such failures are logged, once per 60."""
    tests = Path(__file__).resolve().parent
    env = {**os.environ, "PROMETHEUS_MULTIPROC_DIR": str(tmp_path),
           "PYTHONPATH": os.pathsep.join([str(tests), os.environ.get("PYTHONPATH", "")])}
    done = subprocess.run([sys.executable, "-c", METRICS_DIRECTORY_GONE], env=env, capture_output=True, text=True,
                          timeout=120)
    assert done.returncode == 0, done.stderr[-3000:]
    result = json.loads(done.stdout.splitlines()[-1])
    assert result["statuses"] == [200, 200, 200] and result["scrape"] == 200
    assert result["errors"] >= 3  # each request's counters
    warnings = [line for line in done.stderr.splitlines() if "cannot write metrics to" in line]
    assert len(warnings) == 1, done.stderr[-3000:]  # the first failure, not one line per request


# ------------------------------------------------------------------------------------------------
# The OpenAPI document is a data file, valid on its own
# ------------------------------------------------------------------------------------------------
def test_openapi_data_file_is_a_valid_document():
    from openapi_spec_validator import validate

    path = Path(images.__file__).parents[1] / "service" / "openapi.json"
    stored = json.loads(path.read_text())
    validate(stored)
    post = stored["paths"]["/v1/emotions"]["post"]
    assert "both" in post["description"] and "both" in post["responses"]["400"]["description"]


def test_option_in_both_places_is_the_documented_400(client, jpeg):
    spec = client.get("/openapi.json").get_json()
    assert "400" in spec["paths"]["/v1/emotions"]["post"]["responses"]
    r = client.post("/v1/emotions?detector=haar",
                    json={"image_base64": base64.b64encode(jpeg).decode(), "detector": "none"})
    assert r.status_code == 400 and error_of(r)["code"] == "invalid_option" and "both" in error_of(r)["message"]


def test_openapi_is_filled_from_the_configuration(app_client):
    _, client = app_client(max_upload_mb=3, max_pixels=1_000_000, max_faces=7, threshold=0.4)
    spec = client.get("/openapi.json").get_json()
    text = json.dumps(spec)
    assert "{max_upload_mb}" not in text and "{max_pixels}" not in text and "{version}" not in text
    post = spec["paths"]["/v1/emotions"]["post"]
    assert "3 MB" in post["description"] and "1,000,000" in post["description"]
    params = {p["name"]: p["schema"] for p in post["parameters"]}
    assert params["max_faces"]["maximum"] == 7 and params["threshold"]["default"] == 0.4
    assert spec["components"]["schemas"]["EmotionsResponse"]["properties"]["faces"]["maxItems"] == 7


def test_a_chunked_body_over_the_limit_is_413_not_a_truncated_picture(make_app, jpeg):
    """Before, with `nasfer serve --dev` (Werkzeug's server): a chunked body (no Content-Length) was cut at the
    limit and the picture refused as truncated (422). Werkzeug's server marks such input `wsgi.input_terminated`."""
    _, client, _ = make_app(max_upload_mb=0.001)  # 1,000 bytes
    body = jpeg + b"\0" * 2000
    response = client.post("/v1/emotions", input_stream=io.BytesIO(body), content_type="image/jpeg",
                           headers={"Transfer-Encoding": "chunked"}, environ_overrides={"wsgi.input_terminated": True})
    assert response.status_code == 413 and error_of(response)["code"] == "payload_too_large"
    small = make_app()[1].post("/v1/emotions", input_stream=io.BytesIO(jpeg), content_type="image/jpeg",
                               headers={"Transfer-Encoding": "chunked"},
                               environ_overrides={"wsgi.input_terminated": True})
    assert small.status_code == 200, small.get_data(as_text=True)[:200]


def test_an_option_sent_as_a_file_upload_is_refused(client, jpeg):
    """Before: `curl -F threshold=@file` was dropped silently and the request ran with the default threshold."""
    response = client.post("/v1/emotions", data={"image": (io.BytesIO(jpeg), "a.jpg"),
                                                 "threshold": (io.BytesIO(b"0.9"), "t.txt")},
                           content_type="multipart/form-data")
    assert response.status_code == 400
    error = error_of(response)
    assert error["code"] == "invalid_option" and "must be text fields" in error["message"]


def test_a_json_null_body_is_named_valid_json_of_the_wrong_kind(client):
    response = client.post("/v1/emotions", data="null", content_type="application/json")
    assert response.status_code == 400 and "must be an object" in error_of(response)["message"]
