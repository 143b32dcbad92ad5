"""nasfer.plots writes real, readable PNG files for every figure, including degenerate inputs."""

from __future__ import annotations

import numpy as np
import pytest

pytest.importorskip("matplotlib")
from PIL import Image  # noqa: E402

from nasfer import plots  # noqa: E402
from nasfer.labels import EMOTIONS  # noqa: E402

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


def assert_png(path, min_size=(200, 200)):
    assert path.is_file()
    assert path.read_bytes()[:8] == PNG_SIGNATURE
    with Image.open(path) as img:
        img.verify()
    with Image.open(path) as img:
        assert img.format == "PNG" and img.size[0] >= min_size[0] and img.size[1] >= min_size[1]


@pytest.fixture(scope="module")
def predictions():
    rng = np.random.default_rng(0)
    y = rng.integers(0, 7, 120)
    y[y == 1] = 0  # 'disgust' absent: its ROC curve is undefined
    logits = rng.normal(size=(120, 7)) + 2 * np.eye(7)[y]
    probs = np.exp(logits) / np.exp(logits).sum(1, keepdims=True)
    return y, probs


def test_confusion_png(tmp_path, predictions):
    from nasfer.metrics import confusion_matrix

    y, probs = predictions
    out = plots.plot_confusion(confusion_matrix(y, probs.argmax(1), 7), EMOTIONS, tmp_path / "sub" / "confusion.png")
    assert out == tmp_path / "sub" / "confusion.png"
    assert_png(out)


def test_confusion_png_with_empty_rows(tmp_path):
    assert_png(plots.plot_confusion(np.zeros((3, 3), int), ["a", "b", "c"], tmp_path / "zero.png"))


def test_roc_png_with_absent_class(tmp_path, predictions):
    y, probs = predictions
    assert_png(plots.plot_roc(y, probs, EMOTIONS, tmp_path / "roc.png"))


def test_reliability_png(tmp_path, predictions):
    y, probs = predictions
    assert_png(plots.plot_reliability(y, probs, tmp_path / "reliability.png"))


def test_training_curves_png(tmp_path):
    history = [{"epoch": e, "train_loss": 2 - 0.1 * e, "train_acc": 0.2 + 0.05 * e, "val_loss": 2.1 - 0.08 * e,
                "val_acc": 0.2 + 0.04 * e, "lr": 1e-3 * (1 - e / 10)} for e in range(1, 11)]
    assert_png(plots.plot_training_curves(history, tmp_path / "curves.png"))
    # older histories without lr, and a single epoch
    assert_png(plots.plot_training_curves([{k: v for k, v in history[0].items() if k != "lr"}], tmp_path / "one.png"))


def test_crossval_can_find_the_confusion_plot():
    assert plots.plot_confusion_matrix is plots.plot_confusion
