"""The serving stack itself, over real sockets on 127.0.0.1: slow clients, oversize bodies, errors
raised below the app, and a bounded schemathesis run against the real `nasfer serve`.

The first server runs `nasfer.commands.serve.serve` (gunicorn + the waitress worker) with an
injected fake recognizer, 2 workers x 2 threads, a 0.05 MB body limit and a 3 s read deadline.
"""

from __future__ import annotations

import http.client
import json
import socket
import sys
import textwrap
import threading
import time
import urllib.error
import urllib.request

import pytest
import requests
import schemathesis
from hypothesis import HealthCheck, settings
from schemathesis import checks

from fixtures_service import HOST, face_photo, fetch, free_port, image_bytes, running

pytestmark = pytest.mark.slow

SERVER = textwrap.dedent("""
    import sys
    from nasfer.commands.serve import serve
    from nasfer.service.app import create_app
    from nasfer.service.config import ServeConfig
    from fixtures_service import FakeFace, FakeRecognizer

    cfg = ServeConfig(host="127.0.0.1", port=int(sys.argv[1]), workers=2, threads=2, timeout=20,
                      read_timeout=3, max_upload_mb=0.05)
    faces = [FakeFace((5, 6, 30, 30), "surprise", 0.7)]
    sys.exit(serve(cfg, app_factory=lambda: create_app(
        cfg, recognizer=FakeRecognizer(faces=faces),
        recognizer_factory=lambda d: FakeRecognizer(faces=faces, detector=d))))
""")

#: How long the slow clients trickle in the test (the load benchmark runs them for 60 s).
TRICKLE_S = 12.0
SLOW_CLIENTS = 16


@pytest.fixture(scope="module")
def server():
    port = free_port()
    with running([sys.executable, "-c", SERVER, str(port)], port) as proc:
        yield port
    assert proc.returncode == 0, proc.log[-3000:]
    assert "Traceback" not in proc.log, proc.log[-3000:]


def raw_exchange(port: int, payload: bytes, wait: float = 10.0) -> bytes:
    """Send `payload` on a fresh connection and read until the server closes it."""
    with socket.create_connection((HOST, port), timeout=wait) as s:
        s.sendall(payload)
        out = b""
        while True:
            try:
                data = s.recv(65536)
            except socket.timeout:
                break
            if not data:
                break
            out += data
    return out


def json_error(raw: bytes) -> tuple[int, dict]:
    head, _, body = raw.partition(b"\r\n\r\n")
    status = int(head.split()[1])
    assert b"content-type: application/json" in head.lower(), head
    error = json.loads(body)["error"]
    assert set(error) == {"code", "message"}
    return status, error


def trickler(port: int, stop_at: float, stats: dict, lock: threading.Lock) -> None:
    """Send a POST body one byte every 0.2 s until `stop_at`, reconnecting whenever the server
    ends the request (the read deadline answers 408)."""
    while time.monotonic() < stop_at:
        try:
            with socket.create_connection((HOST, port), timeout=5) as s:
                s.sendall(b"POST /v1/emotions HTTP/1.1\r\nHost: x\r\nContent-Type: image/jpeg\r\n"
                          b"Content-Length: 5000\r\n\r\n")
                while time.monotonic() < stop_at:
                    s.sendall(b"x")
                    time.sleep(0.2)
        except OSError:
            with lock:
                stats["ended_by_server"] += 1


def test_slow_clients_do_not_starve_the_app(server):
    port = server
    stats, lock = {"ended_by_server": 0}, threading.Lock()
    stop_at = time.monotonic() + TRICKLE_S
    slow = [threading.Thread(target=trickler, args=(port, stop_at, stats, lock), daemon=True)
            for _ in range(SLOW_CLIENTS)]
    for t in slow:
        t.start()
    time.sleep(1.0)  # every slow client is connected and trickling
    jpeg = image_bytes("JPEG", size=(120, 90))
    health_s, posts = [], []
    while time.monotonic() < stop_at - 0.5:
        start = time.perf_counter()
        status, _, _ = fetch(port, "GET", "/healthz", timeout=1.0)  # raises socket.timeout if starved
        health_s.append(time.perf_counter() - start)
        assert status == 200
        posts.append(fetch(port, "POST", "/v1/emotions", jpeg, {"Content-Type": "image/jpeg"}, timeout=5)[0])
        time.sleep(0.1)
    for t in slow:
        t.join(timeout=10)
    assert len(health_s) > 10 and max(health_s) < 1.0, max(health_s)
    assert posts and set(posts) == {200}
    assert stats["ended_by_server"] >= SLOW_CLIENTS  # the 3 s read deadline ended every trickled request


def test_stalled_request_gets_a_json_408(server):
    start = time.monotonic()
    raw = raw_exchange(server, b"POST /v1/emotions HTTP/1.1\r\nHost: x\r\nContent-Length: 100\r\n\r\nabc")
    status, error = json_error(raw)
    assert status == 408 and error["code"] == "request_timeout"
    assert 2.5 < time.monotonic() - start < 8


def test_oversize_body_413_is_readable_by_requests_and_urllib(server):
    url = f"http://{HOST}:{server}/v1/emotions"
    big = b"\xff\xd8\xff" + b"x" * 3_000_000
    r = requests.post(url, data=big, headers={"Content-Type": "image/jpeg"}, timeout=30)
    assert r.status_code == 413 and r.json()["error"]["code"] == "payload_too_large"
    assert "0.05 MB" in r.json()["error"]["message"]
    with pytest.raises(urllib.error.HTTPError) as info:
        urllib.request.urlopen(urllib.request.Request(url, data=big, headers={"Content-Type": "image/jpeg"}),
                               timeout=30)
    assert info.value.code == 413 and json.loads(info.value.read())["error"]["code"] == "payload_too_large"


def test_oversize_body_with_expect_100_continue_gets_the_413_instead_of_continue(server):
    # curl sends `Expect: 100-continue` for large uploads and waits before sending the body
    head = (f"POST /v1/emotions HTTP/1.1\r\nHost: {HOST}\r\nContent-Type: image/jpeg\r\n"
            f"Content-Length: 12000000\r\nExpect: 100-continue\r\n\r\n").encode()
    raw = raw_exchange(server, head, wait=5.0)
    assert not raw.startswith(b"HTTP/1.1 100"), raw[:200]
    status, error = json_error(raw)
    assert status == 413 and error["code"] == "payload_too_large"


def test_chunked_oversize_body_is_413_like_content_length(server):
    url = f"http://{HOST}:{server}/v1/emotions"
    photo = image_bytes("JPEG", size=(64, 48))

    def body():  # a valid JPEG followed by 2 MB: must not be cut at the limit and processed
        yield photo
        for _ in range(20):
            yield b"\0" * 100_000

    r = requests.post(url, data=body(), headers={"Content-Type": "image/jpeg"}, timeout=30)
    assert r.status_code == 413, r.text
    assert r.json()["error"]["code"] == "payload_too_large"
    r = requests.post(url, data=iter([photo]), headers={"Content-Type": "image/jpeg"}, timeout=30)
    assert r.status_code == 200, r.text  # a small chunked upload is fine


@pytest.mark.parametrize("payload,status,code", [
    (b"GARBAGE\r\n\r\n", 400, "bad_request"),
    (b"GET /healthz HTTP/1.1\r\nHost: x\r\nX-Big: " + b"a" * 70_000 + b"\r\n\r\n", 431, "headers_too_large"),
    (b"POST /v1/emotions HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: gzip\r\n\r\n", 501, "not_implemented"),
    (b"GET /v1/model?" + b"a" * 9000 + b" HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n", 414, "uri_too_long"),
    (b"GET /v1//model HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n", 308, "moved_permanently"),
    (b"DELETE /v1/model HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n", 405, "method_not_allowed"),
    (b"GET /nope HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n", 404, "not_found"),
], ids=["garbage", "huge-header", "gzip-transfer-coding", "long-target", "double-slash", "delete", "unknown-path"])
def test_every_server_layer_error_is_json(server, payload, status, code):
    got_status, error = json_error(raw_exchange(server, payload))
    assert (got_status, error["code"]) == (status, code), error
    assert "waitress" not in error["message"] and "<" not in error["message"]


def test_liveness_answers_while_every_app_thread_is_busy(server):
    """16 clients keep both workers' threads busy and their queues full with 2 MP uploads;
    /healthz is answered on the I/O loop, so it never waits behind them."""
    jpeg = image_bytes("JPEG", size=(1600, 1200))
    stop = threading.Event()

    def hammer():
        conn = http.client.HTTPConnection(HOST, server, timeout=30)
        while not stop.is_set():
            conn.request("POST", "/v1/emotions", body=jpeg, headers={"Content-Type": "image/jpeg"})
            conn.getresponse().read()
        conn.close()

    load = [threading.Thread(target=hammer, daemon=True) for _ in range(16)]
    for t in load:
        t.start()
    try:
        worst = 0.0
        for _ in range(30):
            start = time.perf_counter()
            assert fetch(server, "GET", "/healthz", timeout=1.0)[0] == 200
            worst = max(worst, time.perf_counter() - start)
            time.sleep(0.05)
    finally:
        stop.set()
        for t in load:
            t.join(timeout=30)
    assert worst < 1.0


# ------------------------------------------------------------------------------------------------
# Schemathesis against the real `nasfer serve` (shipped model, Haar), zero 5xx
# ------------------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def real_server():
    port = free_port()
    cmd = [sys.executable, "-m", "nasfer.cli", "serve", "--host", HOST, "--port", str(port), "--workers", "1",
           "--threads", "2", "--max-upload-mb", "1", "--log-level", "warning"]
    with running(cmd, port) as proc:
        status, _, raw = fetch(port, "POST", "/v1/emotions", face_photo(), {"Content-Type": "image/jpeg"})
        assert status == 200 and json.loads(raw)["faces"][0]["label"] == "happy"
        yield port
    assert proc.returncode == 0, proc.log[-3000:]
    assert "Traceback" not in proc.log, proc.log[-3000:]


@pytest.fixture(scope="module")
def live_schema(real_server):
    return schemathesis.openapi.from_url(f"http://{HOST}:{real_server}/openapi.json")


live = schemathesis.pytest.from_fixture("live_schema")


@live.parametrize()
@settings(max_examples=50, deadline=None, derandomize=True, suppress_health_check=list(HealthCheck))
def test_real_server_conforms_to_its_openapi_with_no_5xx(case):
    # Every check schemathesis has (not_a_server_error included) except positive_data_acceptance:
    # a schema-valid image/jpeg body is any byte string, rightly refused (415/422) when it is not
    # actually a picture.
    case.call_and_validate(excluded_checks=[checks.positive_data_acceptance], timeout=30)
