"""Record real nasfer service responses for the app's Jest tests (src/api/__fixtures__/*.json).

Starts `nasfer serve --dev` on a free loopback port (and a second one with a model that has custom
labels, made from a tiny random checkpoint, to show such labels pass through unchanged), sends the
requests the app sends, and writes each answer as {"status", "headers": {"content-type"}, "body"}.
The photo is scikit-image's public-domain astronaut (`skimage.data.astronaut()`), as a JPEG.

Run from the repository root, with the training extra installed (the custom-label model needs torch):
    PYTHONPATH=$PWD/src python mobile/scripts/record_fixtures.py
"""

from __future__ import annotations

import io
import json
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
import uuid
from pathlib import Path

HERE = Path(__file__).resolve().parent
OUT = HERE.parent / "src" / "api" / "__fixtures__"
REPO = HERE.parent.parent
CUSTOM_LABELS = ["calm", "tense", "smiling"]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start(port: int, *args: str) -> subprocess.Popen:
    proc = subprocess.Popen([sys.executable, "-m", "nasfer.cli", "serve", "--dev", "--port", str(port), *args],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.time() + 60
    while time.time() < deadline:
        try:
            urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=1).read()
            return proc
        except OSError:
            if proc.poll() is not None:
                raise SystemExit(f"nasfer serve exited with status {proc.returncode}")
            time.sleep(0.3)
    proc.terminate()
    raise SystemExit("nasfer serve did not answer /healthz within 60 s")


def multipart(fields: dict[str, tuple[str, str, bytes]]) -> tuple[bytes, str]:
    """Encode {name: (filename, content type, bytes)} as multipart/form-data."""
    boundary = uuid.uuid4().hex
    parts = []
    for name, (filename, ctype, data) in fields.items():
        parts.append(f'--{boundary}\r\nContent-Disposition: form-data; name="{name}"; filename="{filename}"\r\n'
                     f"Content-Type: {ctype}\r\n\r\n".encode() + data + b"\r\n")
    return b"".join(parts) + f"--{boundary}--\r\n".encode(), f"multipart/form-data; boundary={boundary}"


def call(url: str, body: bytes | None = None, ctype: str | None = None) -> dict:
    req = urllib.request.Request(url, data=body, method="POST" if body is not None else "GET")
    if ctype:
        req.add_header("Content-Type", ctype)
    try:
        with urllib.request.urlopen(req, timeout=60) as resp:
            status, headers, data = resp.status, resp.headers, resp.read()
    except urllib.error.HTTPError as err:
        status, headers, data = err.code, err.headers, err.read()
    return {"status": status, "headers": {"content-type": headers.get("Content-Type")}, "body": json.loads(data)}


def astronaut_jpeg() -> bytes:
    from PIL import Image
    from skimage import data

    buf = io.BytesIO()
    Image.fromarray(data.astronaut()).save(buf, "JPEG", quality=90)
    return buf.getvalue()


def blank_jpeg() -> bytes:
    from PIL import Image

    buf = io.BytesIO()
    Image.new("RGB", (320, 240), (120, 140, 160)).save(buf, "JPEG")
    return buf.getvalue()


def custom_label_model(tmp: Path) -> Path:
    sys.path.insert(0, str(REPO / "tests"))
    from fixtures_models import write_tiny_checkpoint

    from nasfer.export import ExportConfig, export_checkpoint

    ckpt = write_tiny_checkpoint(tmp / "custom.pt", labels=CUSTOM_LABELS)
    out = tmp / "custom.onnx"
    export_checkpoint(ExportConfig(checkpoint=str(ckpt), out=str(out)))
    return out


def record(base: str, photo: bytes) -> dict[str, dict]:
    jpeg = ("photo.jpg", "image/jpeg", photo)
    out = {
        "healthz": call(f"{base}/healthz"),
        "model": call(f"{base}/v1/model"),
        "emotions_astronaut": call(f"{base}/v1/emotions", *multipart({"image": jpeg})),
        "emotions_uncertain": call(f"{base}/v1/emotions?threshold=0.95", *multipart({"image": jpeg})),
        "emotions_noface": call(f"{base}/v1/emotions", *multipart({"image": ("blank.jpg", "image/jpeg",
                                                                              blank_jpeg())})),
        "error_400": call(f"{base}/v1/emotions", *multipart({"photo": jpeg})),
        "error_413": call(f"{base}/v1/emotions", *multipart({"image": ("big.jpg", "image/jpeg",
                                                                        b"\xff" * (11 * 1024 * 1024))})),
        "error_415": call(f"{base}/v1/emotions", *multipart({"image": ("notes.txt", "text/plain",
                                                                        b"not a picture at all")})),
        "error_422": call(f"{base}/v1/emotions", *multipart({"image": ("cut.jpg", "image/jpeg",
                                                                        photo[: len(photo) // 3])})),
    }
    return out


#: A 5xx cannot be provoked from a healthy local service; this one has the documented `Error` shape and
#: the code and message that routes.py sends when every model copy is busy (tests/test_mobile_contract.py
#: validates it against the OpenAPI document like the recorded ones).
BUSY_503 = {"status": 503, "headers": {"content-type": "application/json", "retry-after": "1"},
            "body": {"error": {"code": "busy", "message": "the server is busy: no free 'haar' recognizer within "
                                                          "30 s; retry shortly"}},
            "synthetic": "documented 503 shape; not recorded"}


def main() -> None:
    OUT.mkdir(parents=True, exist_ok=True)
    photo = astronaut_jpeg()
    port = free_port()
    proc = start(port)
    try:
        responses = record(f"http://127.0.0.1:{port}", photo)
    finally:
        proc.terminate()
        proc.wait(10)
    with tempfile.TemporaryDirectory() as tmp:
        model = custom_label_model(Path(tmp))
        port = free_port()
        proc = start(port, "--model", str(model))
        try:
            base = f"http://127.0.0.1:{port}"
            responses["model_custom"] = call(f"{base}/v1/model")
            responses["emotions_custom"] = call(f"{base}/v1/emotions", *multipart({"image": ("photo.jpg",
                                                                                           "image/jpeg", photo)}))
        finally:
            proc.terminate()
            proc.wait(10)
    responses["error_503"] = BUSY_503
    for name, response in responses.items():
        body = response["body"]
        if name == "model_custom" and isinstance(body, dict):  # a temporary path of this run
            body.pop("source", None)
        (OUT / f"{name}.json").write_text(json.dumps(response, indent=1) + "\n")
        print(f"{name}: HTTP {response['status']}")


if __name__ == "__main__":
    main()
