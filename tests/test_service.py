"""The Flask service through its test client: POST /v1/emotions with every way to send an image,
its options, and every kind of bad input, size limit and recognizer error.

Fakes, helpers and fixtures (`client`, `make_app`, `fake`, `jpeg`) come from fixtures_service.py.
"""

from __future__ import annotations

import base64
import io
import logging
import re
import struct

import numpy as np
import pytest
from PIL import Image

from fixtures_service import LABELS, FakeFace, FakeRecognizer, error_of, image_bytes, png_header_only, post_multipart


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
# POST /v1/emotions: GIF, BMP and TIFF, as `nasfer predict` reads them
# ------------------------------------------------------------------------------------------------
def encode_pil(img: Image.Image, fmt: str, **kw) -> bytes:
    buf = io.BytesIO()
    img.save(buf, format=fmt, **kw)
    return buf.getvalue()


@pytest.fixture(scope="module")
def astronaut_image():
    from skimage import data

    return Image.fromarray(data.astronaut())  # 512x512, one smiling face


@pytest.fixture(scope="module")
def real_client():
    from fixtures_service import find_model
    from nasfer.service.app import create_app
    from nasfer.service.config import ServeConfig
    from nasfer.service.metrics import Metrics

    return create_app(ServeConfig(model=str(find_model()), threads=1), metrics=Metrics()).test_client()


@pytest.mark.parametrize("fmt,kw,mime", [
    ("BMP", {}, "image/bmp"), ("GIF", {}, "image/gif"), ("TIFF", {}, "image/tiff"),
    ("TIFF", {"compression": "tiff_lzw"}, "application/octet-stream"), ("TIFF", {"compression": "jpeg"}, "image/tiff"),
])
def test_gif_bmp_and_tiff_are_read_like_the_cli_reads_them(real_client, astronaut_image, fmt, kw, mime):
    """Before: 415 for all of them, while `nasfer predict` read them."""
    data = encode_pil(astronaut_image, fmt, **kw)
    for r in (real_client.post("/v1/emotions", data=data, content_type=mime),
              post_multipart(real_client, data, filename=f"astronaut.{fmt.lower()}"),
              real_client.post("/v1/emotions", json={"image_base64": base64.b64encode(data).decode()})):
        assert r.status_code == 200, (fmt, r.get_data(as_text=True))
        body = r.get_json()
        assert body["image"] == {"width": 512, "height": 512}
        assert len(body["faces"]) == 1 and body["faces"][0]["label"] == "happy", body["faces"]


def test_first_frame_of_an_animated_gif_and_first_page_of_a_tiff(client, fake):
    first, second = Image.new("RGB", (64, 48), (200, 120, 60)), Image.new("RGB", (30, 20), (0, 0, 255))
    r = client.post("/v1/emotions", data=encode_pil(first, "TIFF", save_all=True, append_images=[second]),
                    content_type="image/tiff")
    assert r.status_code == 200 and r.get_json()["image"] == {"width": 64, "height": 48}
    gif = encode_pil(first, "GIF", save_all=True, append_images=[first.rotate(90), second.resize((64, 48))])
    r = client.post("/v1/emotions", data=gif, content_type="image/gif")
    assert r.status_code == 200 and r.get_json()["image"] == {"width": 64, "height": 48}
    assert fake.calls[-1] == ((48, 64, 3), "rgb")


@pytest.mark.parametrize("fmt,kw", [("BMP", {}), ("GIF", {}), ("TIFF", {}), ("TIFF", {"compression": "jpeg"}),
                                    ("TIFF", {"compression": "tiff_deflate"})])
def test_truncated_gif_bmp_and_tiff_are_422(client, fmt, kw):
    noisy = Image.fromarray(np.random.default_rng(0).integers(0, 255, (200, 300, 3), dtype=np.uint8))
    data = encode_pil(noisy, fmt, **kw)
    for cut in (len(data) // 10, len(data) // 2, len(data) - 100):
        r = client.post("/v1/emotions", data=data[:cut], content_type="application/octet-stream")
        assert r.status_code == 422, (fmt, cut, r.get_data(as_text=True))
        assert error_of(r)["code"] == "invalid_image"


def gif_screen(width: int, height: int) -> bytes:
    """A 1x1 GIF whose logical screen claims width x height pixels (37 bytes)."""
    data = bytearray(encode_pil(Image.new("P", (1, 1)), "GIF"))
    data[6:10] = struct.pack("<HH", width, height)
    return bytes(data)


def bmp_header_only(width: int, height: int) -> bytes:
    """An 8-bit uncompressed BMP header that claims width x height pixels and holds none."""
    info = struct.pack("<IiiHHIIiiII", 40, width, height, 1, 8, 0, 0, 2835, 2835, 256, 0)
    offset = 14 + 40 + 1024
    return b"BM" + struct.pack("<IHHI", offset, 0, 0, offset) + info + b"\0" * 1024


def test_gif_bmp_and_tiff_bombs_are_413_and_empty_claims_422(make_app):
    _, client, _ = make_app(max_pixels=1_000_000)
    for bomb in (gif_screen(65535, 65535), bmp_header_only(100_000, 100_000),
                 encode_pil(Image.new("L", (1001, 1000)), "TIFF", compression="tiff_deflate")):
        assert len(bomb) < 20_000
        r = client.post("/v1/emotions", data=bomb, content_type="application/octet-stream")
        assert r.status_code == 413 and error_of(r)["code"] == "image_too_large", r.get_data(as_text=True)
    # Headers that claim more pixels than the bytes can hold: refused before decoding, like a JPEG.
    tiff = encode_pil(Image.new("L", (1000, 1000)), "TIFF")  # uncompressed: the header, then 1 MB of pixels
    for claim in (gif_screen(1000, 1000), bmp_header_only(1000, 1000), tiff[:4096]):
        r = client.post("/v1/emotions", data=claim, content_type="application/octet-stream")
        assert r.status_code == 422 and error_of(r)["code"] == "invalid_image", r.get_data(as_text=True)
        assert "header claims 1000x1000 pixels" in error_of(r)["message"]


# ------------------------------------------------------------------------------------------------
# POST /v1/emotions: bad input never gives a 500
# ------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("kwargs,status,code", [
    ({}, 400, "missing_image"),                                                   # nothing at all
    ({"data": b"", "content_type": "image/jpeg"}, 400, "empty_image"),            # empty raw body
    ({"data": b"hello, not a picture", "content_type": "image/png"}, 415, "unsupported_image_type"),
    ({"data": b"GIF89a" + b"\0" * 30, "content_type": "image/jpeg"}, 422, "invalid_image"),    # GIF, no picture
    ({"data": b"BMW is a car, not a bitmap", "content_type": "image/bmp"}, 415, "unsupported_image_type"),
    ({"data": b"%PDF-1.4 not an image", "content_type": "image/tiff"}, 415, "unsupported_image_type"),
    ({"data": b"GIF89 is almost a GIF", "content_type": "image/gif"}, 415, "unsupported_image_type"),
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
                                     {"max_faces": [1]}, {"detector": 3}, {"threshold": None},
                                     # before: accepted, although the OpenAPI schema types them as numbers
                                     {"threshold": "0.3"}, {"max_faces": "3"}])
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
