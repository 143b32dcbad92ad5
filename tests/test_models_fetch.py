"""`nasfer models`: listing, and fetching a detector model from a local HTTP server (no real network)."""

from __future__ import annotations

import functools
import hashlib
import http.server
import json
import shutil
import threading
from pathlib import Path

import pytest

from fixtures_config import assert_validation

from nasfer.cli import main
from nasfer.runtime.faces import YUNET_FILENAME


@pytest.fixture
def server(tmp_path):
    """(base URL, folder it serves) of an HTTP server on 127.0.0.1."""
    root = tmp_path / "www"
    root.mkdir()

    class Quiet(http.server.SimpleHTTPRequestHandler):
        def log_message(self, *args):
            pass

    handler = functools.partial(Quiet, directory=str(root))
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{httpd.server_address[1]}", root
    httpd.shutdown()
    httpd.server_close()


@pytest.fixture
def cache(tmp_path, monkeypatch) -> Path:
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    return tmp_path / "cache" / "nasfer"


def fetch(capsys, *argv):
    code = main(["models", "fetch", "yunet", "--no-force", *map(str, argv)])
    out, err = capsys.readouterr()
    return code, out, err


def test_fetch_verifies_and_stores_atomically(server, cache, capsys):
    url, root = server
    payload = b"model bytes " * 1000
    (root / "m.onnx").write_bytes(payload)
    sha = hashlib.sha256(payload).hexdigest()
    code, out, _ = fetch(capsys, "--url", f"{url}/m.onnx", "--sha256", sha)
    assert code == 0 and "downloaded and verified" in out
    assert (cache / YUNET_FILENAME).read_bytes() == payload
    assert [p.name for p in cache.iterdir()] == [YUNET_FILENAME]  # no temporary file left behind
    code, out, _ = fetch(capsys, "--url", f"{url}/m.onnx", "--sha256", sha)
    assert code == 0 and "already present" in out
    assert main(["models", "fetch", "yunet", "--force", "--url", f"{url}/m.onnx", "--sha256", sha]) == 0
    assert "downloaded and verified" in capsys.readouterr().out


def test_checksum_mismatch_saves_nothing(server, cache, capsys):
    url, root = server
    (root / "m.onnx").write_bytes(b"tampered")
    code, _, err = fetch(capsys, "--url", f"{url}/m.onnx", "--sha256", "0" * 64)
    assert code == 2 and "SHA-256 mismatch" in err and "Traceback" not in err
    assert not cache.exists() or list(cache.iterdir()) == []


def test_a_bad_copy_in_the_cache_is_replaced(server, cache, capsys):
    url, root = server
    (root / "m.onnx").write_bytes(b"good")
    cache.mkdir(parents=True)
    (cache / YUNET_FILENAME).write_bytes(b"stale or damaged")
    code, out, _ = fetch(capsys, "--url", f"{url}/m.onnx", "--sha256", hashlib.sha256(b"good").hexdigest())
    assert code == 0 and "downloaded" in out and (cache / YUNET_FILENAME).read_bytes() == b"good"


@pytest.mark.parametrize("path, message", [("/missing.onnx", "failed: HTTP 404"), ("", "must be an http(s) URL")])
def test_download_errors_are_one_line(path, message, server, cache, capsys):
    url = f"{server[0]}{path}" if path else "file:///etc/passwd"
    code, _, err = fetch(capsys, "--url", url, "--sha256", "0" * 64)
    assert code == 2 and message in err and "Traceback" not in err


def test_fetched_yunet_is_what_the_detector_uses(server, cache, capsys, yunet_onnx):
    import numpy as np

    from nasfer.runtime.faces import create_detector

    url, root = server
    shutil.copy(yunet_onnx, root / "yunet.onnx")
    sha = hashlib.sha256(Path(yunet_onnx).read_bytes()).hexdigest()
    assert fetch(capsys, "--url", f"{url}/yunet.onnx", "--sha256", sha)[0] == 0
    assert create_detector("yunet").detect(np.zeros((100, 100, 3), np.uint8)) == []


def test_pinned_default_is_the_2023mar_model():
    from nasfer.commands.models import DOWNLOADS

    spec = DOWNLOADS["yunet"]
    assert spec.url.startswith("https://") and spec.url.endswith("face_detection_yunet_2023mar.onnx")
    assert len(spec.sha256) == 64 and spec.destination().name == YUNET_FILENAME


def test_models_list(cache, capsys):
    assert main(["models", "list"]) == 0
    out = capsys.readouterr().out
    assert "vgg" in out and "mini-xception" in out
    assert all(name in out for name in ("haar", "yunet", "none")) and "not downloaded" in out
    assert main(["models", "list", "--json"]) == 0
    info = json.loads(capsys.readouterr().out)
    assert "resnet18" in info["architectures"] and info["detectors"]["yunet"]["model"] is None
    assert main(["models"]) == 0 and capsys.readouterr().out == out  # no action: the listing (was a usage error)


@pytest.mark.parametrize("kwargs, message", [
    ({"timeout": 0.0}, "--timeout must be a number of seconds > 0"),
    ({"timeout": -1.0}, "--timeout must be a number of seconds > 0"),
    ({"timeout": float("inf")}, "--timeout must be a number of seconds > 0"),  # before: OverflowError traceback
    ({"timeout": float("nan")}, "--timeout must be a number of seconds > 0"),
    ({"sha256": "xyz"}, "--sha256 must be 64 hexadecimal digits"),  # before: downloaded, then always refused
    ({"sha256": "g" * 64}, "--sha256 must be 64 hexadecimal digits"),
    ({"timeout": 0.001, "sha256": "aB" * 32}, None),  # boundaries are accepted
])
def test_config_validation(kwargs, message):
    from nasfer.commands.models import FetchConfig

    cfg = FetchConfig(**kwargs)
    assert_validation(cfg, message)


def test_impossible_timeout_is_one_line_before_any_download(cache, capsys):
    code, _, err = fetch(capsys, "--url", "http://127.0.0.1:9/m.onnx", "--timeout", "inf")
    assert code == 2 and err.startswith("nasfer models: error: --timeout must be") and "Traceback" not in err
