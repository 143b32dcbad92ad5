"""A real gunicorn server on 127.0.0.1 (free port), hit over HTTP, then stopped with SIGTERM.

The first tests run `nasfer.commands.serve.serve` with an injected fake recognizer (no model
needed), two workers x two threads; the last one runs the actual `nasfer serve` command with the
shipped model on the astronaut photo.
"""

from __future__ import annotations

import json
import signal
import sys
import textwrap
import time
import uuid

import pytest

from fixtures_service import HOST, face_photo, fetch, find_model, free_port, image_bytes, parse_prometheus, running

pytestmark = pytest.mark.slow


def multipart(field: str, filename: str, data: bytes, content_type="image/jpeg") -> tuple[bytes, str]:
    boundary = uuid.uuid4().hex
    body = (f"--{boundary}\r\nContent-Disposition: form-data; name=\"{field}\"; filename=\"{filename}\"\r\n"
            f"Content-Type: {content_type}\r\n\r\n").encode() + data + f"\r\n--{boundary}--\r\n".encode()
    return body, f"multipart/form-data; boundary={boundary}"


FAKE_SERVER = textwrap.dedent("""
    import sys
    from nasfer.commands.serve import serve
    from nasfer.service.app import create_app
    from nasfer.service.config import ServeConfig
    from fixtures_service import FakeFace, FakeRecognizer

    cfg = ServeConfig(host="127.0.0.1", port=int(sys.argv[1]), workers=2, threads=2, timeout=20,
                      max_upload_mb=0.05)
    faces = [FakeFace((5, 6, 30, 30), "surprise", 0.7)]
    sys.exit(serve(cfg, app_factory=lambda: create_app(
        cfg, recognizer=FakeRecognizer(faces=faces),
        recognizer_factory=lambda d: FakeRecognizer(faces=faces, detector=d))))
""")


@pytest.fixture(scope="module")
def fake_server():
    port = free_port()
    with running([sys.executable, "-c", FAKE_SERVER, str(port)], port) as proc:
        yield port, proc
    assert proc.returncode == 0, proc.log[-3000:]  # graceful SIGTERM shutdown
    assert "Traceback" not in proc.log, proc.log[-3000:]


def test_gunicorn_serves_every_route(fake_server):
    port, _ = fake_server
    for path, ctype in [("/healthz", "application/json"), ("/readyz", "application/json"),
                        ("/v1/model", "application/json"), ("/openapi.json", "application/json"),
                        ("/metrics", "text/plain"), ("/docs", "text/html"), ("/", "text/html"),
                        ("/sw.js", "text/javascript"), ("/manifest.webmanifest", "application/manifest+json"),
                        ("/static/app.js", "text/javascript")]:
        status, headers, _ = fetch(port, "GET", path)
        assert status == 200, path
        assert headers["content-type"].startswith(ctype), (path, headers["content-type"])
        assert headers["x-request-id"]


def test_gunicorn_emotions_over_http(fake_server):
    port, _ = fake_server
    body, ctype = multipart("image", "photo.jpg", image_bytes("JPEG", size=(120, 90)))
    status, headers, raw = fetch(port, "POST", "/v1/emotions?threshold=0.8", body,
                                   {"Content-Type": ctype, "X-Request-ID": "gunicorn-test-1"})
    assert status == 200, raw
    assert headers["x-request-id"] == "gunicorn-test-1"
    data = json.loads(raw)
    assert data["image"] == {"width": 120, "height": 90}
    assert data["faces"][0]["label"] == "surprise" and data["faces"][0]["uncertain"] is True

    status, _, raw = fetch(port, "POST", "/v1/emotions", image_bytes("PNG"), {"Content-Type": "image/png"})
    assert status == 200, raw


def test_gunicorn_bad_input_gets_json_errors(fake_server):
    port, _ = fake_server
    cases = [
        (b"", {"Content-Type": "image/jpeg"}, 400),
        (b"not an image at all", {"Content-Type": "image/jpeg"}, 415),
        (b"\xff\xd8\xff\xe0" + b"\0" * 40, {"Content-Type": "image/jpeg"}, 422),
        (b"x" * 200_000, {"Content-Type": "image/jpeg"}, 413),  # over the 0.05 MB limit
        (b"{]", {"Content-Type": "application/json"}, 400),
    ]
    for body, headers, expected in cases:
        status, resp_headers, raw = fetch(port, "POST", "/v1/emotions", body, headers)
        assert status == expected, (expected, raw)
        assert resp_headers["content-type"] == "application/json"
        assert set(json.loads(raw)["error"]) == {"code", "message"}
    status, _, _ = fetch(port, "GET", "/nope")
    assert status == 404
    # the 413 is waitress's, before the app: counted all the same (before: missing from /metrics)
    samples = parse_prometheus(fetch(port, "GET", "/metrics")[2].decode())
    assert samples[("nasfer_http_requests_total", (("method", "POST"), ("route", "unrouted"), ("status", "413")))] >= 1


def test_gunicorn_metrics_sum_over_both_workers(fake_server):
    port, _ = fake_server
    before = parse_prometheus(fetch(port, "GET", "/metrics")[2].decode())
    key = ("nasfer_images_processed_total", (("detector", "haar"),))
    n = 12
    for _ in range(n):  # new connections: gunicorn spreads them over the two workers
        assert fetch(port, "POST", "/v1/emotions", image_bytes("JPEG"), {"Content-Type": "image/jpeg"})[0] == 200
    # Whichever worker answers the scrape, it reports the whole server's count at once (each update is in
    # the workers' shared files before the request is answered), and never less than the scrape before.
    seen = []
    for _ in range(6):
        after = parse_prometheus(fetch(port, "GET", "/metrics")[2].decode())
        assert after[key] - before.get(key, 0) == n
        seen.append(after[("nasfer_http_requests_total", (("method", "GET"), ("route", "/metrics"), ("status", "200")))])
    assert all(later == earlier + 1 for earlier, later in zip(seen, seen[1:])), seen  # each scrape counts the last
    # One model-info series for both workers: no pid label.
    assert [(labels, v) for (name, labels), v in after.items() if name == "nasfer_model_info"] == [
        ((("detector", "haar"), ("model", "fake-model")), 1)]


def test_gunicorn_concurrent_requests(fake_server):
    from concurrent.futures import ThreadPoolExecutor

    port, _ = fake_server
    jpeg = image_bytes("JPEG", size=(200, 150))

    def one(_):
        return fetch(port, "POST", "/v1/emotions", jpeg, {"Content-Type": "image/jpeg"})[0]

    with ThreadPoolExecutor(8) as pool:
        statuses = list(pool.map(one, range(40)))
    assert statuses == [200] * 40


def test_nasfer_serve_command_with_a_real_model():
    model = find_model()
    photo = face_photo()
    port = free_port()
    cmd = [sys.executable, "-m", "nasfer.cli", "serve", "--host", HOST, "--port", str(port), "--workers", "1",
           "--threads", "2", "--model", str(model)]
    with running(cmd, port) as proc:
        status, _, raw = fetch(port, "GET", "/readyz")
        assert status == 200, raw
        body, ctype = multipart("image", "face.jpg", photo)
        status, _, raw = fetch(port, "POST", "/v1/emotions", body, {"Content-Type": ctype})
        assert status == 200, raw
        data = json.loads(raw)
        assert len(data["faces"]) == 1 and data["faces"][0]["label"] == "happy"
    assert proc.returncode == 0, proc.log[-3000:]


def test_gunicorn_sighup_reloads_workers_without_dropping_requests(fake_server):
    """`systemctl reload` (SIGHUP) restarts the workers, which rebuild the app: how a new model file
    at the same path is picked up without downtime (docs/deploy.md)."""
    port, proc = fake_server
    before = json.loads(fetch(port, "GET", "/readyz")[2])["uptime_s"]
    time.sleep(1.5)
    proc.send_signal(signal.SIGHUP)
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        status, _, raw = fetch(port, "GET", "/readyz")
        assert status == 200
        if json.loads(raw)["uptime_s"] < before + 1.0:  # answered by a freshly booted worker
            break
        time.sleep(0.2)
    else:
        pytest.fail("no fresh worker after SIGHUP")
    assert fetch(port, "POST", "/v1/emotions", image_bytes("JPEG"), {"Content-Type": "image/jpeg"})[0] == 200
