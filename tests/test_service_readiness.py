"""/readyz under load, over real sockets: `nasfer serve` with 1 worker x 1 thread whose only thread
is held by a GatedRecognizer while uploads pile up in the worker's queue.

The reviewer's case: 14 uploads on such a server, then `curl /readyz` waited behind all of them in
the thread pool's queue and, once they had drained, said 200. A readiness probe has to be answered
while the threads are busy and has to see the queue as it is: 200 up to SATURATED_QUEUE_PER_THREAD
waiting requests per thread, 503 `saturated` with Retry-After above. The gates make every step
deterministic: each probe below is answered while the thread is provably still held.
"""

from __future__ import annotations

import json
import sys
import textwrap
import threading
import time
from pathlib import Path

import pytest

from fixtures_service import fetch, free_port, image_bytes, running
from nasfer.service.routes import SATURATED_QUEUE_PER_THREAD

pytestmark = pytest.mark.slow

SERVER = textwrap.dedent("""
    import sys
    from nasfer.commands.serve import serve
    from nasfer.service.app import create_app
    from nasfer.service.config import ServeConfig
    from fixtures_service import GatedRecognizer

    cfg = ServeConfig(host="127.0.0.1", port=int(sys.argv[1]), workers=1, threads=1, timeout=120,
                      read_timeout=60)
    sys.exit(serve(cfg, app_factory=lambda: create_app(cfg, recognizer=GatedRecognizer(sys.argv[2]))))
""")

#: A probe's client timeout: only so that a probe queued behind the held thread fails the test
#: instead of hanging it (the thread is never released while a probe is outstanding).
PROBE_TIMEOUT_S = 10.0
#: How long to wait for the server to reach a state the test is waiting for (files, queue length).
SETTLE_S = 60.0


def wait_for(condition, what: str) -> None:
    deadline = time.monotonic() + SETTLE_S
    while not condition():
        if time.monotonic() > deadline:
            pytest.fail(f"not reached within {SETTLE_S:.0f} s: {what}")
        time.sleep(0.02)


def readyz(port: int) -> tuple[int, dict, dict]:
    status, headers, raw = fetch(port, "GET", "/readyz", timeout=PROBE_TIMEOUT_S)
    return status, headers, json.loads(raw)


def test_readyz_sees_the_queue_while_the_only_thread_is_busy(tmp_path: Path):
    port, gates = free_port(), tmp_path
    limit = SATURATED_QUEUE_PER_THREAD * 1  # one thread
    jpeg = image_bytes("JPEG", size=(64, 48))
    results: list[int] = []
    uploads: list[threading.Thread] = []

    def upload() -> None:
        results.append(fetch(port, "POST", "/v1/emotions", jpeg, {"Content-Type": "image/jpeg"}, timeout=120)[0])

    def start_uploads(n: int) -> None:
        for _ in range(n):
            uploads.append(threading.Thread(target=upload, daemon=True))
            uploads[-1].start()

    with running([sys.executable, "-c", SERVER, str(port), str(gates)], port) as proc:
        try:
            start_uploads(1)
            wait_for((gates / "entered-1").exists, "the first upload holds the thread")
            status, _, body = readyz(port)  # behind the held thread this would time out
            assert (status, body["status"]) == (200, "ready"), body

            start_uploads(limit + 1)  # 1 running + limit + 1 waiting: saturated
            answers: list[tuple[int, dict, dict]] = []

            def saturated() -> bool:
                answers.append(readyz(port))
                return answers[-1][0] == 503

            wait_for(saturated, f"/readyz says 503 with {limit + 1} requests waiting")
            status, headers, body = answers[-1]
            assert body["error"]["code"] == "saturated", body
            assert body["error"]["message"].startswith(f"{limit + 1} requests are waiting"), body
            assert headers["retry-after"] == "1"
            assert all(a[0] == 200 for a in answers[:-1])  # on the way up: ready
            assert fetch(port, "GET", "/healthz", timeout=PROBE_TIMEOUT_S)[0] == 200  # liveness ignores load
            assert not (gates / "entered-2").exists()  # all of it while the first upload held the thread

            (gates / "open-1").touch()  # the first upload finishes; the second takes the thread
            wait_for((gates / "entered-2").exists, "the second upload holds the thread")
            status, _, body = readyz(port)  # exactly `limit` waiting now: ready again
            assert (status, body["status"]) == (200, "ready"), body
            assert not (gates / "entered-3").exists()
        finally:
            (gates / "open-all").touch()
            for t in uploads:
                t.join(timeout=120)
        assert results == [200] * (limit + 2)
        status, _, body = readyz(port)  # drained
        assert (status, body["status"]) == (200, "ready"), body
    assert proc.returncode == 0, proc.log[-3000:]
    assert "Traceback" not in proc.log, proc.log[-3000:]
