"""nasfer.plots draws the data it is given (checked on the figure before saving) into real, non-blank PNGs."""

from __future__ import annotations

import matplotlib  # noqa: F401  (the train extra: a missing install must fail, not skip)
import numpy as np
import pytest
from PIL import Image

from nasfer import metrics, plots
from nasfer.labels import EMOTIONS

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


def assert_png(path, min_size=(200, 200)):
    """A readable PNG of at least `min_size` with a drawing on it: not one flat colour, several tones."""
    assert path.read_bytes()[:8] == PNG_SIGNATURE
    with Image.open(path) as img:
        img.verify()
    with Image.open(path) as img:
        assert img.format == "PNG" and img.size[0] >= min_size[0] and img.size[1] >= min_size[1]
        pixels = np.asarray(img.convert("RGB"), dtype=np.int16)
    not_white = (pixels < 245).any(axis=2)
    assert 0.02 < not_white.mean() < 0.98, f"{path.name}: {not_white.mean():.3f} of the pixels are drawn"
    assert len(np.unique(pixels.reshape(-1, 3), axis=0)) > 16  # text, lines and fills, not a blank canvas


@pytest.fixture
def figures(monkeypatch):
    """What each saved figure's axes hold (images, lines, texts, bar heights), captured before it is closed."""
    seen = []
    original = plots._save

    def spy(fig, path):
        seen.append([{"images": [np.asarray(im.get_array()) for im in ax.get_images()],
                      "lines": [(np.asarray(ln.get_xdata(), float), np.asarray(ln.get_ydata(), float), ln.get_label())
                                for ln in ax.get_lines()],
                      "texts": [t.get_text() for t in ax.texts],
                      "bars": [p.get_height() for p in ax.patches]} for ax in fig.axes])
        return original(fig, path)

    monkeypatch.setattr(plots, "_save", spy)
    return seen


@pytest.fixture(scope="module")
def predictions():
    rng = np.random.default_rng(0)
    y = rng.integers(0, 7, 120)
    y[y == 1] = 0  # 'disgust' absent: its ROC curve is undefined
    logits = rng.normal(size=(120, 7)) + 2 * np.eye(7)[y]
    probs = np.exp(logits) / np.exp(logits).sum(1, keepdims=True)
    return y, probs


def test_confusion_png_shows_counts_and_row_normalised_recall(tmp_path, predictions, figures):
    y, probs = predictions
    cm = metrics.confusion_matrix(y, probs.argmax(1), 7)
    out = plots.plot_confusion(cm, EMOTIONS, tmp_path / "sub" / "confusion.png")
    assert out == tmp_path / "sub" / "confusion.png"
    assert_png(out)
    counts, normed = figures[0][0], figures[0][1]  # the two matrices (the colour bars follow)
    np.testing.assert_array_equal(counts["images"][0], cm)
    assert counts["texts"] == [str(v) for v in cm.ravel()]
    rows = cm.sum(1, keepdims=True)
    np.testing.assert_allclose(normed["images"][0], np.divide(cm, rows, out=np.zeros(cm.shape), where=rows > 0))


def test_confusion_png_with_empty_rows(tmp_path, figures):
    assert_png(plots.plot_confusion(np.zeros((3, 3), int), ["a", "b", "c"], tmp_path / "zero.png"))
    assert figures[0][0]["texts"] == ["0"] * 9 and figures[0][1]["texts"] == ["0.00"] * 9


def test_roc_png_draws_each_class_curve_with_its_auc(tmp_path, predictions, figures):
    y, probs = predictions
    assert_png(plots.plot_roc(y, probs, EMOTIONS, tmp_path / "roc.png"))
    lines = {label: (x, yy) for x, yy, label in figures[0][0]["lines"]}
    for k, curve in enumerate(metrics.one_vs_rest_roc(y, probs)):
        name = EMOTIONS[k]
        if curve is None:
            assert f"{name} (AUC n/a)" in lines and len(lines[f"{name} (AUC n/a)"][0]) == 0
            continue
        fpr, tpr, area = curve
        x, yy = lines[f"{name} (AUC {area:.3f})"]
        np.testing.assert_allclose(x, fpr)
        np.testing.assert_allclose(yy, tpr)
    assert "disgust (AUC n/a)" in lines


def test_reliability_png_bars_are_the_bins(tmp_path, predictions, figures):
    y, probs = predictions
    assert_png(plots.plot_reliability(y, probs, tmp_path / "reliability.png", n_bins=10))
    bins = metrics.reliability_bins(y, probs, 10)
    counts = figures[0][1]["bars"]
    assert counts == [b["count"] for b in bins] and sum(counts) == len(y)
    filled = [b for b in bins if b["count"]]
    assert figures[0][0]["bars"][:len(filled)] == pytest.approx([b["accuracy"] for b in filled])


def test_training_curves_png_plots_the_history(tmp_path, figures):
    history = [{"epoch": e, "train_loss": 2 - 0.1 * e, "train_acc": 0.2 + 0.05 * e, "val_loss": 2.1 - 0.08 * e,
                "val_acc": 0.2 + 0.04 * e, "lr": 1e-3 * (1 - e / 10)} for e in range(1, 11)]
    assert_png(plots.plot_training_curves(history, tmp_path / "curves.png"))
    loss, acc, lr = figures[0][:3]
    (tx, ty, _), (vx, vy, _) = loss["lines"]
    np.testing.assert_allclose(tx, range(1, 11))
    np.testing.assert_allclose(ty, [h["train_loss"] for h in history])
    np.testing.assert_allclose(vy, [h["val_loss"] for h in history])
    np.testing.assert_allclose(acc["lines"][1][1], [h["val_acc"] for h in history])
    np.testing.assert_allclose(lr["lines"][0][1], [h["lr"] for h in history])
    # older histories without lr, and a single epoch
    assert_png(plots.plot_training_curves([{k: v for k, v in history[0].items() if k != "lr"}], tmp_path / "one.png"))
    assert len(figures[1]) == 2


def test_crossval_can_find_the_confusion_plot():
    assert plots.plot_confusion_matrix is plots.plot_confusion
