"""ONNX Runtime engine: parity with PyTorch, identical preprocessing, batching, card checks, no torch."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from nasfer.runtime.engine import Classifier
from nasfer.errors import ModelError
from nasfer.labels import EMOTIONS


@pytest.fixture(scope="module")
def clf(tiny_onnx) -> Classifier:
    return Classifier(tiny_onnx, threads=1)


@pytest.fixture(scope="module")
def crops() -> np.ndarray:
    rng = np.random.default_rng(0)
    out = rng.integers(0, 256, (40, 48, 48), dtype=np.uint8)
    out[0], out[1] = 0, 255
    return out


def copy_model(src: Path, dst_dir: Path, stem: str = "m") -> Path:
    dst = dst_dir / f"{stem}.onnx"
    shutil.copy(src, dst)
    shutil.copy(src.with_suffix(".json"), dst.with_suffix(".json"))
    return dst


def test_engine_matches_pytorch(clf, crops, tiny_checkpoint):
    import torch

    from nasfer.checkpoint import load_model, preprocessing_of
    from nasfer.preprocessing import normalize_tensor

    model, ckpt = load_model(tiny_checkpoint)
    with torch.no_grad():
        want = torch.softmax(model(normalize_tensor(torch.from_numpy(crops), preprocessing_of(ckpt))), 1).numpy()
    got = clf.predict(crops)
    assert got.shape == (40, 7) and got.dtype == np.float32
    assert np.abs(got - want).max() <= 1e-4
    np.testing.assert_allclose(got.sum(1), 1.0, atol=1e-5)


def test_engine_feeds_exactly_what_normalize_tensor_makes(tiny_onnx, crops, monkeypatch):
    import torch

    from nasfer.preprocessing import normalize_tensor

    clf = Classifier(tiny_onnx, threads=1, max_batch=16)
    fed = []
    real_run = clf.session.run

    class Spy:
        def run(self, names, feed):
            fed.append(feed["input"])
            return real_run(names, feed)

    monkeypatch.setattr(clf, "session", Spy())
    clf.predict(crops)
    assert [len(x) for x in fed] == [16, 16, 8]  # chunks of max_batch
    want = normalize_tensor(torch.from_numpy(crops), clf.preprocessing).numpy()
    got = np.concatenate(fed)
    assert got.dtype == np.float32 and got.shape == (40, 1, 48, 48)
    assert np.array_equal(got, want)


def test_batching_and_shapes(tiny_onnx, clf, crops):
    small = Classifier(tiny_onnx, threads=1, max_batch=3)
    np.testing.assert_allclose(small.predict(crops), clf.predict(crops), atol=1e-6)
    assert clf.predict(crops[0]).shape == (1, 7)
    assert clf.predict(np.zeros((0, 48, 48), np.uint8)).shape == (0, 7)
    assert clf.labels == EMOTIONS and clf.preprocessing.size == 48 and clf.card["name"] == "tiny"
    with pytest.raises(ValueError, match="uint8"):
        clf.predict(crops.astype(np.float32))
    with pytest.raises(ValueError, match="48x48"):
        clf.predict(np.zeros((2, 32, 32), np.uint8))


def test_threads_are_applied(clf):
    assert clf.session.get_session_options().intra_op_num_threads == 1


def test_the_recognizer_classifier_does_not_spin_between_detections(tiny_onnx, clf):
    """Spinning ONNX Runtime threads slowed OpenCV's detection by a third in a detect + classify loop."""
    from nasfer.runtime.api import EmotionRecognizer

    key = "session.intra_op.allow_spinning"
    rec = EmotionRecognizer(model=str(tiny_onnx), detector="none")
    assert rec.classifier.session.get_session_options().get_session_config_entry(key) == "0"
    with pytest.raises(RuntimeError):  # a bare Classifier keeps ONNX Runtime's default (spinning)
        clf.session.get_session_options().get_session_config_entry(key)


def test_missing_or_inconsistent_models_are_model_errors(tiny_onnx, tmp_path):
    with pytest.raises(ModelError, match="not found"):
        Classifier(tmp_path / "none.onnx")
    model = copy_model(tiny_onnx, tmp_path)
    card_file = model.with_suffix(".json")
    card = json.loads(card_file.read_text())

    card_file.write_text(json.dumps({**card, "onnx": {**card["onnx"], "sha256": "0" * 64}}))
    with pytest.raises(ModelError, match="SHA-256"):
        Classifier(model)
    card_file.write_text(json.dumps({**card, "labels": ["a", "b"]}))
    with pytest.raises(ModelError, match="7 outputs but 2 labels"):
        Classifier(model)
    card_file.write_text(json.dumps({**card, "format": "something-else"}))
    with pytest.raises(ModelError, match="not a nasfer model card"):
        Classifier(model)
    card_file.write_text("{broken")
    with pytest.raises(ModelError, match="not a readable model card"):
        Classifier(model)
    card_file.unlink()
    with pytest.raises(ModelError, match="model card not found"):
        Classifier(model)

    junk = tmp_path / "junk.onnx"
    junk.write_bytes(b"not onnx at all")
    junk.with_suffix(".json").write_text(json.dumps({**card, "onnx": {**card["onnx"], "sha256": None}}))
    with pytest.raises(ModelError, match="ONNX Runtime cannot load it"):
        Classifier(junk)

    # before: "README.json: model card not found" (a file the user never named) and "model file not found"
    text = tmp_path / "README.md"
    text.write_text("# not a model")
    with pytest.raises(ModelError, match=r"README.md: not an \.onnx model"):
        Classifier(text)
    with pytest.raises(ModelError, match="is a folder: give the model file"):
        Classifier(tmp_path)


def test_default_model(monkeypatch, tmp_path, tiny_onnx):
    import nasfer.weights as weights

    shipped = Path(weights.__file__).with_name("default.onnx")
    if shipped.is_file():
        assert weights.default_model_path() == shipped
        assert Classifier().labels
    else:
        with pytest.raises(ModelError, match="--model"):
            weights.default_model_path()
    copy_model(tiny_onnx, tmp_path, "default")
    monkeypatch.setattr(weights, "__file__", str(tmp_path / "__init__.py"))
    assert Classifier().card["name"] == "tiny"  # found beside the package's weights/__init__.py


def test_inference_path_never_imports_torch(tiny_onnx):
    """api, engine, faces, video and annotate run a whole detection without torch in the process."""
    code = (
        "import sys, numpy as np\n"
        "import nasfer, nasfer.runtime.api, nasfer.runtime.engine, nasfer.runtime.faces, nasfer.runtime.video, nasfer.runtime.annotate\n"
        "from nasfer import EmotionRecognizer\n"
        f"r = EmotionRecognizer({str(tiny_onnx)!r}, threads=1)\n"
        "faces = r.detect(np.zeros((120, 160, 3), np.uint8))\n"
        "nasfer.runtime.annotate.draw_faces(np.zeros((50, 50, 3), np.uint8), [])\n"
        "assert 'torch' not in sys.modules, 'torch was imported'\n"
        "print('ok', len(faces))\n"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "ok 0"
