"""Fixtures of the service tests (owned by the service part): a fake recognizer, image helpers, apps.

`FakeRecognizer` stands in for `nasfer.runtime.api.EmotionRecognizer` (no model needed, fast);
`make_app`/`client` build the Flask app around it; `face_photo()` is scikit-image's public-domain
astronaut photo (examples/astronaut.jpg), who smiles, for the tests that run the real model.
`free_port`, `fetch` and `running` start a real server process on 127.0.0.1 and talk HTTP to it.
The helpers are imported by name (`from fixtures_service import ...`); conftest.py exports the fixtures.
"""

from __future__ import annotations

import http.client
import io
import os
import re
import signal
import socket
import struct
import subprocess
import tempfile
import threading
import time
import zlib
from contextlib import contextmanager
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from nasfer.labels import EMOTIONS
from nasfer.service.app import create_app
from nasfer.service.config import ServeConfig
from nasfer.service.metrics import Metrics

__all__ = ["fake", "make_app", "client", "jpeg"]

LABELS = list(EMOTIONS)
TESTS = Path(__file__).resolve().parent
HOST = "127.0.0.1"


# ------------------------------------------------------------------------------------------------
# Fakes and image helpers
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


class GatedRecognizer(FakeRecognizer):
    """A FakeRecognizer that holds the thread running its n-th `detect` call (n = 1, 2, ...) until the
    file `open-<n>` or `open-all` exists in `directory`, after creating `entered-<n>` there: a test in
    another process keeps a server's threads busy exactly as long as it needs, with no timing guesses.
    Waiting longer than `limit_s` raises RuntimeError (a test that forgot to open its gates)."""

    def __init__(self, directory, limit_s: float = 120.0, **kw):
        super().__init__(**kw)
        self.directory = Path(directory)
        self.limit_s = limit_s
        self.count = 0
        self.lock = threading.Lock()

    def detect(self, image, color="rgb", threshold=None):
        with self.lock:
            self.count += 1
            n = self.count
        (self.directory / f"entered-{n}").touch()
        deadline = time.monotonic() + self.limit_s
        while not ((self.directory / f"open-{n}").exists() or (self.directory / "open-all").exists()):
            if time.monotonic() > deadline:
                raise RuntimeError(f"call {n}: no open-{n} or open-all in {self.directory} within {self.limit_s} s")
            time.sleep(0.01)
        return super().detect(image, color, threshold)


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


# ------------------------------------------------------------------------------------------------
# OpenAPI schemas
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


# ------------------------------------------------------------------------------------------------
# A real server on 127.0.0.1 (the gunicorn and serving-stack tests)
# ------------------------------------------------------------------------------------------------
def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind((HOST, 0))
        return s.getsockname()[1]


def fetch(port: int, method: str, path: str, body: bytes | None = None, headers: dict | None = None,
            timeout: float = 30.0) -> tuple[int, dict, bytes]:
    conn = http.client.HTTPConnection(HOST, port, timeout=timeout)
    try:
        conn.request(method, path, body=body, headers=headers or {})
        response = conn.getresponse()
        return response.status, {k.lower(): v for k, v in response.getheaders()}, response.read()
    finally:
        conn.close()


@contextmanager
def running(cmd: list[str], port: int, startup_s: float = 90.0):
    """Start `cmd`, wait for /healthz on `port`, yield the process, then SIGTERM it and wait.
    The server's output goes to a temporary file (a pipe could fill up and block it); it is on
    `proc.log` afterwards."""
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(TESTS), os.environ.get("PYTHONPATH", "")]))
    with tempfile.TemporaryFile() as log:
        proc = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, env=env)

        def output() -> str:
            log.seek(0)
            return log.read().decode(errors="replace")

        try:
            deadline = time.monotonic() + startup_s
            while True:
                if proc.poll() is not None:
                    pytest.fail(f"server exited with {proc.returncode} before it was ready:\n{output()[-4000:]}")
                try:
                    if fetch(port, "GET", "/healthz", timeout=2)[0] == 200:
                        break
                except OSError:
                    pass
                if time.monotonic() > deadline:
                    pytest.fail(f"server not ready within {startup_s:.0f} s:\n{output()[-4000:]}")
                time.sleep(0.2)
            yield proc
        finally:
            if proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
                try:
                    proc.wait(timeout=30)
                except subprocess.TimeoutExpired:
                    proc.kill()
                    proc.wait(timeout=10)
            proc.log = output()  # type: ignore[attr-defined]
