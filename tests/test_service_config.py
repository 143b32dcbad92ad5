"""The service's configuration, app factory and command line (ServeConfig validation, CLI flags,
gunicorn options, worker count, import-time behaviour, recognizer pool), and the real
recognizer: the shipped default model (or $NASFER_TEST_MODEL) with the Haar detector on
scikit-image's public-domain astronaut photo (examples/astronaut.jpg), who smiles.
"""

from __future__ import annotations

import math
import subprocess
import sys

import numpy as np
import pytest

from fixtures_service import FakeRecognizer, face_photo, find_model, image_bytes, post_multipart, schema_validator
from nasfer.service.app import create_app
from nasfer.service.config import ServeConfig
from nasfer.service.metrics import Metrics


# ------------------------------------------------------------------------------------------------
# Configuration, factory and command line
# ------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("field,value", [("port", 70000), ("threads", 0), ("threshold", 1.5), ("max_faces", -1),
                                         ("max_upload_mb", 0), ("max_pixels", 0), ("timeout", 0), ("read_timeout", 0),
                                         ("workers", -1), ("detector", " "),
                                         # before: accepted, forking / starting that many (or an OverflowError)
                                         ("workers", 100_000), ("threads", 100_000), ("max_upload_mb", math.inf),
                                         ("max_upload_mb", math.nan), ("threshold", math.nan),
                                         ("max_faces", 101)])  # before: accepted above the service's cap of 100
def test_config_validation(field, value):
    with pytest.raises(ValueError, match=f"^--{field.replace('_', '-')}[ :]"):
        ServeConfig(**{field: value}).validate()


@pytest.mark.parametrize("kwargs", [{"port": 0, "workers": 0, "threads": 1, "timeout": 1, "read_timeout": 1,
                                     "threshold": 0.0, "max_faces": 0, "max_upload_mb": 0.001, "max_pixels": 1},
                                    {"port": 65535, "workers": 1024, "threads": 1024, "threshold": 1.0,
                                     "max_faces": 100}])
def test_config_validation_accepts_the_boundaries(kwargs):
    cfg = ServeConfig(**kwargs)
    assert cfg.validate() is cfg


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


def test_serve_with_an_unusable_detector_fails_before_its_workers(capsys, tmp_path, monkeypatch):
    """Before: every gunicorn worker printed a ~40-line traceback, exit 3."""
    from nasfer.cli import main

    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "empty-cache"))  # no YuNet model cached
    assert main(["serve", "--detector", "bogus"]) == 2
    err = capsys.readouterr().err
    assert "nasfer serve: error: --detector: unknown face detector 'bogus'; choose one of haar, yunet, none" in err
    assert main(["serve", "--detector", "yunet"]) == 2
    err = capsys.readouterr().err  # the message of create_detector, which predict and the Python API give too
    assert "the yunet detector needs its model: run `nasfer models fetch yunet`" in err
    assert "Traceback" not in err


def test_importing_the_service_loads_no_model():
    code = ("import sys, nasfer.service.app, nasfer.service.routes, nasfer.commands.serve; "
            "print(any(m in sys.modules for m in ('nasfer.runtime.api', 'onnxruntime', 'torch')))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "False"


def test_importing_the_service_leaves_prometheus_client_unimported():
    """prometheus_client picks its multiprocess mode when it is imported: `nasfer serve` sets
    PROMETHEUS_MULTIPROC_DIR first, so the modules it imports before must not import it."""
    code = ("import sys, nasfer.service.app, nasfer.service.routes, nasfer.service.metrics, nasfer.commands.serve; "
            "print('prometheus_client' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "False"


def test_gunicorn_child_exit_drops_the_live_gauges_of_the_exited_worker(tmp_path, monkeypatch):
    from types import SimpleNamespace

    import prometheus_client  # noqa: F401  imported before the variable is set: this process stays single-process

    from nasfer.commands.serve import gunicorn_options, worker_exited

    assert gunicorn_options(ServeConfig())["child_exit"] is worker_exited
    for name in ("gauge_livemax_123.db", "gauge_livemax_456.db", "counter_123.db", "histogram_123.db"):
        (tmp_path / name).write_bytes(b"")
    monkeypatch.setenv("PROMETHEUS_MULTIPROC_DIR", str(tmp_path))
    worker_exited(None, SimpleNamespace(pid=123))
    assert sorted(p.name for p in tmp_path.iterdir()) == ["counter_123.db", "gauge_livemax_456.db", "histogram_123.db"]


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


def test_a_port_in_use_is_one_line_before_the_workers_start(capsys):
    """Before: gunicorn retried for about 3 s, printing 'Address already in use' five times, then 'Can't connect'."""
    import socket

    from nasfer.cli import main

    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        assert main(["serve", "--port", str(port), "--workers", "1"]) == 2
    err = capsys.readouterr().err
    assert err.strip() == (f"nasfer serve: error: cannot listen on 127.0.0.1:{port}: Address already in use; another "
                           "server is listening there: stop it or choose another --port")


def test_a_negative_max_faces_names_the_services_meaning_of_zero():
    """Before: `nasfer serve --max-faces -1` said "(0: no limit)", the CLI's meaning; the service's 0 is its cap."""
    from nasfer.service.config import MAX_FACES_CAP

    with pytest.raises(ValueError, match=rf"--max-faces must be 0..{MAX_FACES_CAP} \(0: {MAX_FACES_CAP}\), got -1"):
        ServeConfig(max_faces=-1).validate()
