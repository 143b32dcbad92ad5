"""The Flask service through its test client: every route, every kind of bad input.

Most tests inject `FakeRecognizer` (no model needed, fast); the `real_app` tests run the real
`nasfer.runtime.api.EmotionRecognizer` (the shipped default model, or $NASFER_TEST_MODEL) with the Haar
detector on scikit-image's public-domain astronaut photo (examples/astronaut.jpg), who smiles.
"""

from __future__ import annotations

import base64
import io
import json
import logging
import math
import os
import re
import struct
import subprocess
import sys
import zlib
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from nasfer.labels import EMOTIONS
from nasfer.service.app import create_app
from nasfer.service.config import ServeConfig
from nasfer.service.metrics import Metrics

LABELS = list(EMOTIONS)


# ------------------------------------------------------------------------------------------------
# Fakes and image helpers (also imported by the other test_service_* / test_web_client modules)
# ------------------------------------------------------------------------------------------------
class FakeFace:
    """`unclear`: the detector could not tell which way is up (uncertain whatever the threshold)."""

    def __init__(self, box, label="happy", confidence=0.8, unclear=False):
        self.box = tuple(box)
        self.label = label
        self.confidence = confidence
        self.unclear = unclear
        self.threshold = 0.25

    def to_dict(self):
        rest = (1.0 - self.confidence) / (len(LABELS) - 1)
        scores = {name: (self.confidence if name == self.label else rest) for name in LABELS}
        return {"box": list(self.box), "detector_score": 0.9, "landmarks": None, "scores": scores,
                "label": self.label, "confidence": self.confidence,
                "uncertain": self.unclear or self.confidence < self.threshold}


class FakeRecognizer:
    """Returns `faces` for every image; records what it was given; can raise on demand."""

    labels = LABELS

    def __init__(self, faces=None, detector="haar", raises: BaseException | None = None):
        self.faces = [FakeFace((10, 10, 40, 40))] if faces is None else faces
        self.detector = detector
        self.raises = raises
        self.calls: list[tuple[tuple[int, ...], str]] = []
        self.card = {"format": "nasfer-model-card/1", "name": "fake-model", "labels": LABELS,
                     "preprocessing": {"size": 48, "channels": 1, "mean": 0.5, "std": 0.25}}

    def detect(self, image, color="rgb", threshold=None):
        assert isinstance(image, np.ndarray) and image.dtype == np.uint8 and image.ndim == 3
        self.calls.append((image.shape, color))
        if self.raises is not None:
            raise self.raises
        for face in self.faces:
            face.threshold = 0.25 if threshold is None else threshold
        return list(self.faces)


def image_bytes(fmt="JPEG", size=(64, 48), mode="RGB", color=(200, 120, 60), **save_kw) -> bytes:
    img = Image.new(mode, size, color if mode in ("RGB", "RGBA", "CMYK") else 128)
    buf = io.BytesIO()
    img.save(buf, format=fmt, **save_kw)
    return buf.getvalue()


def png_header_only(width: int, height: int) -> bytes:
    """A PNG that claims width x height pixels but holds almost no data (decompression-bomb probe)."""
    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)

    ihdr = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", zlib.compress(b"\0" * 64)) + chunk(b"IEND", b"")


ASTRONAUT = Path(__file__).resolve().parents[1] / "examples" / "astronaut.jpg"


def face_photo() -> bytes:
    """JPEG of scikit-image's astronaut (Eileen Collins, NASA, public domain; 512x512): one face,
    smiling, that the Haar detector finds exactly once."""
    return ASTRONAUT.read_bytes()


def find_model() -> Path:
    """The real ONNX model for the service tests: $NASFER_TEST_MODEL if set, else the shipped default."""
    override = os.environ.get("NASFER_TEST_MODEL")
    if override:
        if not Path(override).is_file():
            pytest.fail(f"NASFER_TEST_MODEL={override}: no such file")
        return Path(override)
    from nasfer.weights import resolve_model

    return Path(resolve_model(None))


def error_of(response) -> dict:
    assert response.is_json, response.get_data(as_text=True)[:200]
    body = response.get_json()
    assert set(body) == {"error"} and set(body["error"]) == {"code", "message"}, body
    assert "Traceback" not in response.get_data(as_text=True)
    return body["error"]


# ------------------------------------------------------------------------------------------------
# Fixtures
# ------------------------------------------------------------------------------------------------
@pytest.fixture
def fake():
    return FakeRecognizer()


@pytest.fixture
def make_app():
    """make_app(recognizer=None, factory=None, **config) -> (app, client, built) where `built` maps
    detector -> the FakeRecognizers the factory made."""

    def make(recognizer=None, factory=None, **cfg):
        built: dict[str, list[FakeRecognizer]] = {}

        def default_factory(detector):
            rec = FakeRecognizer(detector=detector)
            built.setdefault(detector, []).append(rec)
            return rec

        app = create_app(ServeConfig(**cfg), recognizer=recognizer or FakeRecognizer(),
                         recognizer_factory=factory or default_factory, metrics=Metrics())
        return app, app.test_client(), built

    return make


@pytest.fixture
def client(make_app, fake):
    return make_app(recognizer=fake)[1]


@pytest.fixture
def jpeg():
    return image_bytes("JPEG")


def post_multipart(client, data: bytes, filename="photo.jpg", path="/v1/emotions", **fields):
    return client.post(path, data={"image": (io.BytesIO(data), filename), **fields},
                       content_type="multipart/form-data")


# ------------------------------------------------------------------------------------------------
# POST /v1/emotions: the three ways to send an image
# ------------------------------------------------------------------------------------------------
def test_multipart_upload_returns_faces_image_model_timing(client, fake, jpeg):
    r = post_multipart(client, jpeg)
    assert r.status_code == 200, r.get_data(as_text=True)
    body = r.get_json()
    assert list(body) == ["faces", "image", "detector", "threshold", "model", "timing_ms"]
    assert body["image"] == {"width": 64, "height": 48}
    assert body["model"] == {"name": "fake-model", "labels": LABELS}
    assert body["faces"] == [FakeFace((10, 10, 40, 40)).to_dict()]
    assert body["detector"] == "haar" and body["threshold"] == 0.25
    t = body["timing_ms"]
    assert set(t) == {"decode", "detect_classify", "total"} and all(v >= 0 for v in t.values())
    assert t["total"] >= t["decode"] and t["total"] >= t["detect_classify"]
    assert fake.calls == [((48, 64, 3), "rgb")]
    assert r.headers["Content-Type"] == "application/json"


@pytest.mark.parametrize("fmt,mime", [("JPEG", "image/jpeg"), ("PNG", "image/png"), ("WEBP", "image/webp")])
def test_raw_body_in_each_format(client, fmt, mime):
    r = client.post("/v1/emotions", data=image_bytes(fmt), content_type=mime)
    assert r.status_code == 200, r.get_data(as_text=True)
    assert r.get_json()["image"] == {"width": 64, "height": 48}


def test_raw_body_type_is_sniffed_not_trusted(client):
    r = client.post("/v1/emotions", data=image_bytes("PNG"), content_type="image/jpeg")
    assert r.status_code == 200
    r = client.post("/v1/emotions", data=image_bytes("PNG"), content_type="application/octet-stream")
    assert r.status_code == 200


def test_json_base64_plain_data_url_and_urlsafe(client, jpeg):
    for encoded in (base64.b64encode(jpeg).decode(),
                    "data:image/jpeg;base64," + base64.b64encode(jpeg).decode(),
                    base64.urlsafe_b64encode(jpeg).decode().rstrip("="),
                    "\n".join(re.findall(".{1,76}", base64.b64encode(jpeg).decode()))):
        r = client.post("/v1/emotions", json={"image_base64": encoded})
        assert r.status_code == 200, r.get_data(as_text=True)


def test_options_in_query_form_and_json(make_app, jpeg):
    faces = [FakeFace((0, 0, 10, 10), confidence=0.5), FakeFace((5, 5, 30, 30), confidence=0.3),
             FakeFace((1, 1, 20, 20), confidence=0.9)]
    app, client, built = make_app(recognizer=FakeRecognizer(faces=faces))
    r = client.post("/v1/emotions?threshold=0.6&max_faces=2", data=jpeg, content_type="image/jpeg")
    body = r.get_json()
    assert r.status_code == 200 and body["threshold"] == 0.6
    assert [f["box"] for f in body["faces"]] == [[5, 5, 30, 30], [1, 1, 20, 20]]  # largest first, 2 kept
    assert [f["uncertain"] for f in body["faces"]] == [True, False]  # recomputed for threshold 0.6

    r = post_multipart(client, jpeg, max_faces="1", threshold="0.1")
    assert [f["box"] for f in r.get_json()["faces"]] == [[5, 5, 30, 30]]
    assert r.get_json()["faces"][0]["uncertain"] is False

    r = client.post("/v1/emotions", json={"image_base64": base64.b64encode(jpeg).decode(), "max_faces": 3,
                                          "threshold": 1, "detector": "haar"})
    assert r.status_code == 200 and len(r.get_json()["faces"]) == 3
    assert all(f["uncertain"] for f in r.get_json()["faces"])


def test_a_face_of_unclear_orientation_stays_uncertain_at_any_threshold(make_app, jpeg):
    faces = [FakeFace((0, 0, 30, 30), confidence=0.9, unclear=True)]
    app, client, built = make_app(recognizer=FakeRecognizer(faces=faces))
    r = client.post("/v1/emotions?threshold=0.1", data=jpeg, content_type="image/jpeg")
    assert r.status_code == 200 and r.get_json()["faces"][0]["uncertain"] is True


def test_detector_per_request_caches_one_recognizer_per_detector(make_app, jpeg):
    app, client, built = make_app()
    for _ in range(3):
        r = client.post("/v1/emotions?detector=none", data=jpeg, content_type="image/jpeg")
        assert r.status_code == 200 and r.get_json()["detector"] == "none"
    assert list(built) == ["none"] and len(built["none"]) == 1
    assert len(built["none"][0].calls) == 3
    r = client.get("/readyz").get_json()
    assert r["detectors"]["loaded"] == ["haar", "none"]


def test_configured_detector_is_offered(make_app, jpeg):
    app, client, built = make_app(detector="yunet", detector_model="/x/yunet.onnx")
    spec = client.get("/openapi.json").get_json()
    enum = spec["paths"]["/v1/emotions"]["post"]["parameters"][0]["schema"]["enum"]
    assert enum[0] == "yunet" and "haar" in enum
    assert client.post("/v1/emotions", data=jpeg, content_type="image/jpeg").get_json()["detector"] == "yunet"


def test_exif_orientation_is_applied(client):
    img = Image.new("RGB", (40, 20), (10, 200, 10))
    exif = Image.Exif()
    exif[0x0112] = 6  # rotate 90 degrees clockwise to display
    buf = io.BytesIO()
    img.save(buf, format="JPEG", exif=exif.tobytes())
    r = client.post("/v1/emotions", data=buf.getvalue(), content_type="image/jpeg")
    assert r.get_json()["image"] == {"width": 20, "height": 40}


@pytest.mark.parametrize("fmt,mode,kw", [
    ("PNG", "RGBA", {}), ("PNG", "LA", {}), ("PNG", "P", {}), ("PNG", "L", {}), ("PNG", "1", {}),
    ("PNG", "I;16", {}), ("JPEG", "L", {}), ("JPEG", "CMYK", {}), ("WEBP", "RGBA", {}),
    ("JPEG", "RGB", {"progressive": True}),
])
def test_image_modes_are_converted_to_rgb(client, fake, fmt, mode, kw):
    data = image_bytes(fmt, size=(33, 17), mode=mode, **kw)
    r = client.post("/v1/emotions", data=data, content_type="application/octet-stream")
    assert r.status_code == 200, r.get_data(as_text=True)
    assert fake.calls[-1] == ((17, 33, 3), "rgb")


def test_no_face_found_is_a_200_with_empty_list(make_app, jpeg):
    _, client, _ = make_app(recognizer=FakeRecognizer(faces=[]))
    r = client.post("/v1/emotions", data=jpeg, content_type="image/jpeg")
    assert r.status_code == 200 and r.get_json()["faces"] == []


# ------------------------------------------------------------------------------------------------
# POST /v1/emotions: bad input never gives a 500
# ------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("kwargs,status,code", [
    ({}, 400, "missing_image"),                                                   # nothing at all
    ({"data": b"", "content_type": "image/jpeg"}, 400, "empty_image"),            # empty raw body
    ({"data": b"hello, not a picture", "content_type": "image/png"}, 415, "unsupported_image_type"),
    ({"data": b"GIF89a" + b"\0" * 30, "content_type": "image/jpeg"}, 415, "unsupported_image_type"),
    ({"data": b"some text", "content_type": "text/plain"}, 415, "unsupported_media_type"),
    ({"data": b"some bytes"}, 415, "unsupported_media_type"),                    # body, no type
    ({"data": "a=b", "content_type": "application/x-www-form-urlencoded"}, 415, "unsupported_media_type"),
    ({"data": b"\xff\xd8\xff\xe0" + b"\0" * 20, "content_type": "image/jpeg"}, 422, "invalid_image"),
    ({"data": b"{not json", "content_type": "application/json"}, 400, "invalid_json"),
    ({"json": [1, 2]}, 400, "invalid_json"),
    ({"json": {}}, 400, "missing_image"),
    ({"json": {"image": "abc"}}, 400, "unknown_field"),
    ({"json": {"image_base64": 12}}, 400, "invalid_base64"),
    ({"json": {"image_base64": ""}}, 400, "empty_image"),
    ({"json": {"image_base64": "!!!not base64!!!"}}, 400, "invalid_base64"),
    ({"json": {"image_base64": "data:image/png,abc"}}, 400, "invalid_base64"),
    ({"json": {"image_base64": base64.b64encode(b"plain text").decode()}}, 415, "unsupported_image_type"),
])
def test_bad_bodies(client, kwargs, status, code):
    r = client.post("/v1/emotions", **kwargs)
    assert r.status_code == status, r.get_data(as_text=True)
    assert error_of(r)["code"] == code


def test_truncated_images_are_422(client):
    for fmt in ("JPEG", "PNG", "WEBP"):
        data = image_bytes(fmt, size=(300, 200), mode="RGB")
        rng = np.random.default_rng(0)
        noisy = Image.fromarray(rng.integers(0, 255, (200, 300, 3), dtype=np.uint8))
        buf = io.BytesIO()
        noisy.save(buf, format=fmt)
        data = buf.getvalue()
        r = client.post("/v1/emotions", data=data[: len(data) // 2], content_type="application/octet-stream")
        assert r.status_code == 422, (fmt, r.get_data(as_text=True))
        assert error_of(r)["code"] == "invalid_image"


def test_multipart_wrong_fields(client, jpeg):
    r = client.post("/v1/emotions", data={"file": (io.BytesIO(jpeg), "a.jpg")}, content_type="multipart/form-data")
    assert r.status_code == 400 and error_of(r)["code"] == "unknown_field"
    assert "'file'" in error_of(r)["message"]
    r = client.post("/v1/emotions", data={"threshold": "0.5"}, content_type="multipart/form-data")
    assert r.status_code == 400 and error_of(r)["code"] == "missing_image"
    r = client.post("/v1/emotions", data={"image": "just text"}, content_type="multipart/form-data")
    assert r.status_code == 400 and error_of(r)["code"] == "invalid_field"
    r = client.post("/v1/emotions", data={"image": [(io.BytesIO(jpeg), "a.jpg"), (io.BytesIO(jpeg), "b.jpg")]},
                    content_type="multipart/form-data")
    assert r.status_code == 400 and error_of(r)["code"] == "invalid_field"
    r = post_multipart(client, b"")
    assert r.status_code == 400 and error_of(r)["code"] == "empty_image"
    r = post_multipart(client, b"%PDF-1.4 not an image", filename="doc.pdf")
    assert r.status_code == 415 and error_of(r)["code"] == "unsupported_image_type"
    r = client.post("/v1/emotions", data=b"--x\r\nbroken", content_type="multipart/form-data")  # no boundary
    assert r.status_code == 400


@pytest.mark.parametrize("query", [
    "threshold=abc", "threshold=1.5", "threshold=-0.1", "threshold=nan", "threshold=inf", "threshold=",
    "max_faces=0", "max_faces=-1", "max_faces=2.5", "max_faces=x", "max_faces=101", "max_faces=21",
    "detector=dlib", "detector=", "threshold=0.1&threshold=0.2", "treshold=0.5", "foo=1",
])
def test_bad_option_values_are_400(client, jpeg, query):
    r = client.post(f"/v1/emotions?{query}", data=jpeg, content_type="image/jpeg")
    assert r.status_code == 400, (query, r.get_data(as_text=True))
    assert error_of(r)["code"] in ("invalid_option", "unknown_parameter")


@pytest.mark.parametrize("options", [{"threshold": True}, {"threshold": "high"}, {"max_faces": 1.5},
                                     {"max_faces": [1]}, {"detector": 3}, {"threshold": None}])
def test_bad_option_values_in_json_are_400(client, jpeg, options):
    r = client.post("/v1/emotions", json={"image_base64": base64.b64encode(jpeg).decode(), **options})
    assert r.status_code == 400 and error_of(r)["code"] == "invalid_option", r.get_data(as_text=True)


def test_option_in_query_and_body_is_400(client, jpeg):
    r = post_multipart(client, jpeg, path="/v1/emotions?threshold=0.2", threshold="0.3")
    assert r.status_code == 400 and "both" in error_of(r)["message"]


def test_max_faces_limit_follows_server_setting(make_app, jpeg):
    _, client, _ = make_app(max_faces=0)  # no server limit: the request cap is 100
    assert client.post("/v1/emotions?max_faces=100", data=jpeg, content_type="image/jpeg").status_code == 200
    assert client.post("/v1/emotions?max_faces=101", data=jpeg, content_type="image/jpeg").status_code == 400


def test_body_over_the_size_limit_is_413(make_app):
    _, client, _ = make_app(max_upload_mb=0.01)  # ~10 KB
    big = image_bytes("PNG", size=(300, 300), mode="RGB")
    noise = Image.fromarray(np.random.default_rng(1).integers(0, 255, (200, 200, 3), dtype=np.uint8))
    buf = io.BytesIO()
    noise.save(buf, format="PNG")
    big = buf.getvalue()
    assert len(big) > 11_000
    for r in (client.post("/v1/emotions", data=big, content_type="image/png"),
              post_multipart(client, big),
              client.post("/v1/emotions", json={"image_base64": base64.b64encode(big).decode()})):
        assert r.status_code == 413, r.get_data(as_text=True)
        assert error_of(r)["code"] == "payload_too_large"
        assert "0.01 MB" in error_of(r)["message"]


def test_too_many_pixels_and_decompression_bombs_are_413(make_app):
    _, client, _ = make_app(max_pixels=10_000)
    r = client.post("/v1/emotions", data=image_bytes("PNG", size=(101, 100), mode="L"), content_type="image/png")
    assert r.status_code == 413 and error_of(r)["code"] == "image_too_large"
    assert "101x100" in error_of(r)["message"]
    # A few hundred bytes that claim 100,000 x 100,000 pixels: rejected from the header, never decoded.
    bomb = png_header_only(100_000, 100_000)
    assert len(bomb) < 200
    r = client.post("/v1/emotions", data=bomb, content_type="image/png")
    assert r.status_code == 413 and error_of(r)["code"] == "image_too_large"


def test_default_pixel_limit_rejects_a_bomb_that_pillow_alone_would_only_warn_about(client):
    bomb = png_header_only(9000, 9000)  # 81 MP: under Pillow's error limit, over our 25 MP default
    r = client.post("/v1/emotions", data=bomb, content_type="image/png")
    assert r.status_code == 413 and "9000x9000" in error_of(r)["message"]


def test_recognizer_errors_map_to_json_errors(make_app, jpeg, caplog):
    from nasfer.errors import ImageError, ModelError

    _, client, _ = make_app(recognizer=FakeRecognizer(raises=ImageError("image is too small")))
    r = client.post("/v1/emotions", data=jpeg, content_type="image/jpeg")
    assert r.status_code == 422 and error_of(r) == {"code": "invalid_image", "message": "image is too small"}

    _, client, _ = make_app(recognizer=FakeRecognizer(raises=ModelError("model file vanished")))
    r = client.post("/v1/emotions", data=jpeg, content_type="image/jpeg")
    assert r.status_code == 503 and error_of(r)["code"] == "model_unavailable"

    _, client, _ = make_app(recognizer=FakeRecognizer(raises=RuntimeError("secret internal detail")))
    with caplog.at_level(logging.ERROR, logger="nasfer"):
        r = client.post("/v1/emotions", data=jpeg, content_type="image/jpeg", headers={"X-Request-ID": "req-500"})
    assert r.status_code == 500
    err = error_of(r)
    assert err["code"] == "internal_error" and "req-500" in err["message"]
    assert "secret internal detail" not in r.get_data(as_text=True)
    logged = [rec for rec in caplog.records if rec.levelno >= logging.ERROR and rec.exc_info]
    assert len(logged) == 1 and "req-500" in logged[0].getMessage()
    assert "secret internal detail" in caplog.text  # the detail goes to the log, not to the client


def test_detector_that_fails_to_load_is_503(make_app, jpeg):
    def factory(detector):
        raise FileNotFoundError("cascade missing")

    _, client, _ = make_app(factory=factory)
    r = client.post("/v1/emotions?detector=none", data=jpeg, content_type="image/jpeg")
    assert r.status_code == 503 and error_of(r)["code"] == "detector_unavailable"
    assert client.post("/v1/emotions", data=jpeg, content_type="image/jpeg").status_code == 200


def test_http_errors_are_json(client):
    r = client.get("/no/such/page")
    assert r.status_code == 404 and error_of(r)["code"] == "not_found"
    r = client.get("/v1/emotions")
    assert r.status_code == 405 and error_of(r)["code"] == "method_not_allowed"
    assert "POST" in r.headers["Allow"]
    r = client.put("/healthz")
    assert r.status_code == 405 and error_of(r)["code"] == "method_not_allowed"


# ------------------------------------------------------------------------------------------------
# Request ids, logging, CORS, headers
# ------------------------------------------------------------------------------------------------
def test_request_id_is_echoed_generated_or_replaced(client, jpeg, caplog):
    with caplog.at_level(logging.INFO, logger="nasfer"):
        r = client.post("/v1/emotions", data=jpeg, content_type="image/jpeg", headers={"X-Request-ID": "abc-123"})
    assert r.headers["X-Request-ID"] == "abc-123"
    access = [rec for rec in caplog.records if rec.name == "nasfer.service.access"]
    assert access and access[-1].request_id == "abc-123" and "POST" in access[-1].getMessage()

    generated = client.get("/healthz").headers["X-Request-ID"]
    assert re.fullmatch(r"[0-9a-f]{32}", generated)
    for bad in ("has spaces in it", "x" * 200, "semi;colon"):
        rid = client.get("/healthz", headers={"X-Request-ID": bad}).headers["X-Request-ID"]
        assert rid != bad and re.fullmatch(r"[0-9a-f]{32}", rid)


def test_access_log_escapes_control_characters(client, caplog):
    with caplog.at_level(logging.INFO, logger="nasfer"):
        client.get("/x%0Aforged%20line?a=1")
    lines = [rec.getMessage() for rec in caplog.records if rec.name == "nasfer.service.access"]
    assert lines and "\n" not in lines[-1] and "\\n" in lines[-1]


def test_access_log_uses_the_proxy_forwarded_address(client, caplog):
    with caplog.at_level(logging.INFO, logger="nasfer"):
        client.get("/v1/model", headers={"X-Forwarded-For": "198.51.100.7, 203.0.113.9"})
    lines = [rec.getMessage() for rec in caplog.records if rec.name == "nasfer.service.access"]
    assert lines[-1].startswith("203.0.113.9 ")


def test_log_format_carries_the_request_id(fake, jpeg):
    from nasfer.service.logs import FORMAT, RequestIdFilter

    app = create_app(ServeConfig(), recognizer=fake, metrics=Metrics())
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.setFormatter(logging.Formatter(FORMAT))
    handler.addFilter(RequestIdFilter())
    logger = logging.getLogger("nasfer.service.access")
    logger.addHandler(handler)
    try:
        app.test_client().post("/v1/emotions", data=jpeg, content_type="image/jpeg", headers={"X-Request-ID": "trace-77"})
    finally:
        logger.removeHandler(handler)
    assert "[trace-77] nasfer.service.access" in stream.getvalue()


def test_cors_is_off_by_default(client):
    r = client.get("/healthz", headers={"Origin": "https://elsewhere.example"})
    assert "Access-Control-Allow-Origin" not in r.headers


def test_cors_allows_only_configured_origins(make_app, jpeg):
    _, client, _ = make_app(cors_origins="https://app.example, https://other.example/")
    r = client.post("/v1/emotions", data=jpeg, content_type="image/jpeg", headers={"Origin": "https://app.example"})
    assert r.headers["Access-Control-Allow-Origin"] == "https://app.example"
    assert "Origin" in r.headers["Vary"] and r.headers["Access-Control-Expose-Headers"] == "X-Request-ID"
    r = client.get("/healthz", headers={"Origin": "https://other.example"})
    assert r.headers["Access-Control-Allow-Origin"] == "https://other.example"
    r = client.get("/healthz", headers={"Origin": "https://evil.example"})
    assert "Access-Control-Allow-Origin" not in r.headers
    r = client.options("/v1/emotions", headers={"Origin": "https://app.example",
                                               "Access-Control-Request-Method": "POST",
                                               "Access-Control-Request-Headers": "content-type"})
    assert r.status_code == 200
    assert "POST" in r.headers["Access-Control-Allow-Methods"]
    assert "Content-Type" in r.headers["Access-Control-Allow-Headers"]


def test_cors_wildcard(make_app):
    _, client, _ = make_app(cors_origins="*")
    r = client.get("/v1/model", headers={"Origin": "https://any.example"})
    assert r.headers["Access-Control-Allow-Origin"] == "*"


# ------------------------------------------------------------------------------------------------
# Operations routes
# ------------------------------------------------------------------------------------------------
def test_healthz_and_readyz(client, make_app):
    assert client.get("/healthz").get_json() == {"status": "ok"}
    r = client.get("/readyz")
    body = r.get_json()
    assert r.status_code == 200 and body["status"] == "ready" and body["model"] == "fake-model"
    assert body["detectors"] == {"default": "haar", "available": ["haar", "none"], "loaded": ["haar"]}

    app, client2, _ = make_app()
    app.extensions["nasfer"]["pools"].loaded = lambda: []
    r = client2.get("/readyz")
    assert r.status_code == 503 and error_of(r)["code"] == "not_ready"


def test_model_card(client, fake):
    r = client.get("/v1/model")
    assert r.status_code == 200 and r.get_json() == fake.card


def test_metrics_count_requests_latency_and_faces(client, jpeg):
    for _ in range(2):
        client.post("/v1/emotions", data=jpeg, content_type="image/jpeg")
    client.post("/v1/emotions", data=b"nope", content_type="image/jpeg")
    client.get("/missing")
    r = client.get("/metrics")
    assert r.status_code == 200
    assert r.headers["Content-Type"].startswith("text/plain; version=0.0.4")
    samples = parse_prometheus(r.get_data(as_text=True))
    assert samples[('nasfer_http_requests_total', (("method", "POST"), ("route", "/v1/emotions"), ("status", "200")))] == 2
    assert samples[('nasfer_http_requests_total', (("method", "POST"), ("route", "/v1/emotions"), ("status", "415")))] == 1
    assert samples[('nasfer_http_requests_total', (("method", "GET"), ("route", "unmatched"), ("status", "404")))] == 1
    assert samples[("nasfer_faces_detected_total", (("detector", "haar"),))] == 2
    assert samples[("nasfer_images_processed_total", (("detector", "haar"),))] == 2
    assert samples[("nasfer_predictions_total", (("label", "happy"),))] == 2
    assert samples[("nasfer_model_info", (("detector", "haar"), ("model", "fake-model")))] == 1
    route = (("route", "/v1/emotions"),)
    count = samples[("nasfer_http_request_duration_seconds_count", route)]
    assert count == 3 and samples[("nasfer_http_request_duration_seconds_bucket", (("le", "+Inf"),) + route)] == 3
    buckets = [v for (name, labels), v in samples.items()
               if name == "nasfer_http_request_duration_seconds_bucket" and route[0] in labels]
    assert len(buckets) > 5 and buckets == sorted(buckets)  # cumulative, in order


def parse_prometheus(text: str) -> dict:
    """{(name, sorted label pairs): value}; asserts every line is valid exposition format."""
    samples = {}
    line_re = re.compile(r'^([a-zA-Z_:][a-zA-Z0-9_:]*)(\{(.*)\})? (-?[0-9.e+-]+|\+Inf|NaN)$')
    for line in text.splitlines():
        if line.startswith("# HELP ") or line.startswith("# TYPE "):
            continue
        m = line_re.match(line)
        assert m, f"bad exposition line: {line!r}"
        labels = tuple(sorted(re.findall(r'(\w+)="((?:[^"\\]|\\.)*)"', m.group(3) or "")))
        samples[(m.group(1), labels)] = float(m.group(4))
    return samples


def test_metrics_are_summed_across_worker_processes(tmp_path):
    a, b = Metrics(tmp_path), Metrics(tmp_path)
    a.inc("nasfer_faces_detected_total", {"detector": "haar"}, 3)
    a.observe("nasfer_faces_per_image", 2)
    b.inc("nasfer_faces_detected_total", {"detector": "haar"}, 4)
    b.observe("nasfer_faces_per_image", 1)
    a.flush()
    b.flush()
    for m in (a, b):
        samples = parse_prometheus(m.render())
        assert samples[("nasfer_faces_detected_total", (("detector", "haar"),))] == 7
        assert samples[("nasfer_faces_per_image_count", ())] == 2
        assert samples[("nasfer_faces_per_image_sum", ())] == 3
    a.inc("nasfer_faces_detected_total", {"detector": "haar"})  # live count of the answering worker
    assert parse_prometheus(a.render())[("nasfer_faces_detected_total", (("detector", "haar"),))] == 8
    a.close()
    b.close()


def test_metric_label_values_are_escaped():
    m = Metrics()
    m.inc("nasfer_predictions_total", {"label": 'we"ird\\label\n'})
    assert 'label="we\\"ird\\\\label\\n"' in m.render()
    with pytest.raises(KeyError):
        m.inc("undefined_metric")


# ------------------------------------------------------------------------------------------------
# OpenAPI and docs
# ------------------------------------------------------------------------------------------------
def _oas30_to_json_schema(node):
    """OpenAPI 3.0 schema -> plain JSON Schema: `nullable: true` becomes `anyOf [..., null]`."""
    if isinstance(node, dict):
        out = {k: _oas30_to_json_schema(v) for k, v in node.items() if k not in ("nullable", "example")}
        if node.get("nullable"):
            return {"anyOf": [out, {"type": "null"}]}
        return out
    if isinstance(node, list):
        return [_oas30_to_json_schema(v) for v in node]
    return node


def schema_validator(spec: dict, name: str):
    """A validator (`.validate(instance)` raises on mismatch) for components/schemas/`name`."""
    import jsonschema_rs  # comes with schemathesis (dev extra)

    schema = {"$ref": f"#/components/schemas/{name}", "components": _oas30_to_json_schema(spec["components"])}
    return jsonschema_rs.Draft4Validator(schema)


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


# ------------------------------------------------------------------------------------------------
# Configuration, factory and command line
# ------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("field,value", [("port", 70000), ("threads", 0), ("threshold", 1.5), ("max_faces", -1),
                                         ("max_upload_mb", 0), ("max_pixels", 0), ("timeout", 0), ("read_timeout", 0),
                                         ("workers", -1), ("detector", " ")])
def test_config_validation(field, value):
    with pytest.raises(ValueError, match=field.replace("_", "-")):
        ServeConfig(**{field: value}).validate()


def test_cli_flags_map_to_serve_config():
    from nasfer.cli import build_parser
    from nasfer.config import from_args

    args = build_parser().parse_args(["serve", "--host", "0.0.0.0", "--port", "9001", "--workers", "3",
                                      "--threads", "4", "--timeout", "12", "--read-timeout", "40", "--model", "m.onnx",
                                      "--detector", "yunet", "--detector-model", "y.onnx", "--threshold", "0.4",
                                      "--max-faces", "5", "--max-upload-mb", "2.5", "--max-pixels", "1000",
                                      "--cors-origins", "*", "--dev", "--log-level", "debug"])
    cfg = from_args(ServeConfig, args)
    assert cfg == ServeConfig(host="0.0.0.0", port=9001, workers=3, threads=4, timeout=12, read_timeout=40,
                              model="m.onnx",
                              detector="yunet", detector_model="y.onnx", threshold=0.4, max_faces=5,
                              max_upload_mb=2.5, max_pixels=1000, cors_origins="*", dev=True, log_level="debug")


def test_gunicorn_options():
    from nasfer.commands.serve import bind_address, gunicorn_options

    opts = gunicorn_options(ServeConfig(workers=3, threads=2, timeout=20, port=8123))
    assert opts["bind"] == ["127.0.0.1:8123"] and opts["workers"] == 3 and opts["threads"] == 2
    assert opts["worker_class"] == "nasfer.service.worker.WaitressWorker" and opts["timeout"] == 20
    assert gunicorn_options(ServeConfig(threads=1))["worker_class"] == opts["worker_class"]
    assert gunicorn_options(ServeConfig(workers=0))["workers"] >= 1
    assert bind_address("::1", 80) == "[::1]:80"


def test_worker_count_respects_container_cpu_quota(tmp_path):
    from nasfer.service.config import _cgroup_cpu_quota

    (tmp_path / "cpu.max").write_text("150000 100000\n")
    assert _cgroup_cpu_quota(str(tmp_path)) == 1.5
    (tmp_path / "cpu.max").write_text("max 100000\n")
    assert _cgroup_cpu_quota(str(tmp_path)) is None
    (tmp_path / "cpu.max").unlink()
    (tmp_path / "cpu").mkdir()
    (tmp_path / "cpu" / "cpu.cfs_quota_us").write_text("200000")
    (tmp_path / "cpu" / "cpu.cfs_period_us").write_text("100000")
    assert _cgroup_cpu_quota(str(tmp_path)) == 2.0
    (tmp_path / "cpu" / "cpu.cfs_quota_us").write_text("-1")
    assert _cgroup_cpu_quota(str(tmp_path)) is None
    assert ServeConfig(workers=0).worker_count >= 1 and ServeConfig(workers=5).worker_count == 5


def test_serve_with_a_missing_model_fails_cleanly(capsys):
    from nasfer.cli import main

    assert main(["serve", "--model", "/nonexistent/model.onnx"]) == 2
    err = capsys.readouterr().err
    assert "nasfer serve: error: --model /nonexistent/model.onnx: no such file" in err
    assert "Traceback" not in err


def test_importing_the_service_loads_no_model():
    code = ("import sys, nasfer.service.app, nasfer.service.routes, nasfer.commands.serve; "
            "print(any(m in sys.modules for m in ('nasfer.runtime.api', 'onnxruntime', 'torch')))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "False"


NO_TORCH = """
import importlib.abc, sys
class Block(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path=None, target=None):
        if name == "torch" or name.startswith("torch."):
            raise ModuleNotFoundError("No module named 'torch'")
sys.meta_path.insert(0, Block())
"""


def test_serve_works_without_torch():
    """The Docker image and `pip install nasfer` have no torch: `nasfer serve` must not need it."""
    code = NO_TORCH + "from nasfer.cli import main; sys.exit(main(['serve', '--help']))"
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr[-2000:]
    assert "--max-upload-mb" in result.stdout
    code = NO_TORCH + ("from nasfer.service.app import create_app; from nasfer.service.config import ServeConfig; "
                       "import nasfer.commands.serve; print('ok')")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert result.returncode == 0 and result.stdout.strip() == "ok", result.stderr[-2000:]


def test_create_app_builds_the_recognizer_once_in_the_factory(jpeg):
    made = []

    def factory(detector):
        made.append(detector)
        return FakeRecognizer(detector=detector)

    app = create_app(ServeConfig(threads=1), recognizer_factory=factory, metrics=Metrics())
    assert made == ["haar"]  # warmed in the factory, before any request
    client = app.test_client()
    for _ in range(3):
        client.post("/v1/emotions", data=jpeg, content_type="image/jpeg")
    assert made == ["haar"]


def test_a_model_that_cannot_load_fails_create_app():
    from nasfer.errors import ModelError

    def factory(detector):
        raise ModelError("broken card")

    with pytest.raises(ModelError, match="broken card"):
        create_app(ServeConfig(), recognizer_factory=factory, metrics=Metrics())


def test_pool_lends_each_recognizer_to_one_thread_at_a_time():
    import threading
    import time as _time

    from nasfer.service.recognizers import RecognizerPools

    active, peak, made = [0], [0], []
    lock = threading.Lock()

    class Slow(FakeRecognizer):
        def __init__(self):
            super().__init__()
            self.busy = False

        def detect(self, image, color="rgb"):
            assert not self.busy, "one recognizer used by two threads at once"
            self.busy = True
            with lock:
                active[0] += 1
                peak[0] = max(peak[0], active[0])
            _time.sleep(0.02)
            with lock:
                active[0] -= 1
            self.busy = False
            return []

    def factory(detector):
        rec = Slow()
        made.append(rec)
        return rec

    pools = RecognizerPools(factory, ["haar"], size=3)
    image = np.zeros((4, 4, 3), np.uint8)

    def work():
        for _ in range(5):
            with pools.lease("haar") as rec:
                rec.detect(image)

    threads = [threading.Thread(target=work) for _ in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(made) <= 3 and peak[0] <= 3


# ------------------------------------------------------------------------------------------------
# The real recognizer and model
# ------------------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def real_app():
    model = find_model()
    app = create_app(ServeConfig(model=str(model), threads=1), metrics=Metrics())
    return app


@pytest.fixture(scope="module")
def face_jpeg():
    return face_photo()


def test_real_recognizer_finds_and_classifies_a_face(real_app, face_jpeg):
    client = real_app.test_client()
    r = post_multipart(client, face_jpeg)
    assert r.status_code == 200, r.get_data(as_text=True)
    body = r.get_json()
    assert body["image"] == {"width": 512, "height": 512}
    assert len(body["faces"]) == 1
    face = body["faces"][0]
    labels = body["model"]["labels"]
    assert face["label"] == "happy" and not face["uncertain"]  # she smiles
    assert set(face["scores"]) == set(labels)
    assert math.isclose(sum(face["scores"].values()), 1.0, abs_tol=1e-3)
    assert face["confidence"] == pytest.approx(max(face["scores"].values()), abs=1e-6)
    box = face["box"]
    x, y, w, h = (box["x"], box["y"], box["w"], box["h"]) if isinstance(box, dict) else box
    assert 0 <= x and 0 <= y and x + w <= 512 and y + h <= 512 and w > 60
    assert x < 256 < x + w + 100 and y < 140 < y + h  # her face, not the flag or the suit
    spec = client.get("/openapi.json").get_json()
    schema_validator(spec, "EmotionsResponse").validate(body)
    schema_validator(spec, "ModelCard").validate(client.get("/v1/model").get_json())


@pytest.mark.parametrize("size", [(1, 1), (2, 3000), (3000, 2), (48, 48), (5, 5)])
def test_real_recognizer_odd_sizes_never_500(real_app, size):
    client = real_app.test_client()
    for detector in ("haar", "none"):
        r = client.post(f"/v1/emotions?detector={detector}", data=image_bytes("PNG", size=size),
                        content_type="image/png")
        assert r.status_code in (200, 422), (size, detector, r.get_data(as_text=True))
        if r.status_code == 200:
            assert r.get_json()["image"] == {"width": size[0], "height": size[1]}


def test_real_recognizer_blank_image_has_no_face(real_app):
    r = real_app.test_client().post("/v1/emotions", data=image_bytes("JPEG", size=(320, 240)),
                                    content_type="image/jpeg")
    assert r.status_code == 200 and r.get_json()["faces"] == []
