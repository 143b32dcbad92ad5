"""Ten-crop test-time augmentation: the views, its mean, and the exported graph computing the same."""

from __future__ import annotations

import json

import numpy as np
import pytest

from nasfer.evaluate import predict_batches
from nasfer.tta import builtin_tta, crop_offsets, five_crop_views, ten_crop_views


def test_views_are_edge_padded_shifts_and_their_mirrors():
    img = np.arange(36, dtype=np.uint8).reshape(1, 6, 6)
    views = ten_crop_views(img, padding=2)
    assert views.shape == (10, 1, 6, 6)
    np.testing.assert_array_equal(views[4, 0], img[0])  # the centre window is the crop itself
    padded = np.pad(img[0], 2, mode="edge")
    for k, (r, c) in enumerate(crop_offsets(2)):
        np.testing.assert_array_equal(views[k, 0], padded[r:r + 6, c:c + 6])
        np.testing.assert_array_equal(views[5 + k, 0], padded[r:r + 6, c:c + 6][:, ::-1])
    # the top-left view is the image shifted 2 px right and down, its first rows/columns repeated
    np.testing.assert_array_equal(views[0, 0, 2:, 2:], img[0, :4, :4])
    np.testing.assert_array_equal(views[0, 0, 0], [0, 0, 0, 1, 2, 3])
    with pytest.raises(ValueError, match="padding"):
        crop_offsets(-1)


def test_ten_crop_equals_the_mean_of_its_crops():
    rng = np.random.default_rng(0)
    weights = rng.normal(size=(48 * 48, 7))

    def predict(x):  # any position-sensitive model
        logits = x.reshape(len(x), -1).astype(np.float64) @ weights / 2e4
        e = np.exp(logits - logits.max(1, keepdims=True))
        return e / e.sum(1, keepdims=True)

    images = rng.integers(0, 256, (5, 48, 48), dtype=np.uint8)
    got = predict_batches(predict, images, batch_size=2, tta="ten-crop")
    crops = ten_crop_views(images)
    expected = np.mean([predict(c) for c in crops], axis=0)
    np.testing.assert_allclose(got, expected, rtol=1e-12)
    assert not np.allclose(got, predict(images))  # the views do change the answer of this model
    np.testing.assert_allclose(predict_batches(predict, images, 3, tta="five-crop"),
                               np.mean([predict(c) for c in five_crop_views(images)], axis=0), rtol=1e-12)
    with pytest.raises(ValueError, match="unknown TTA"):
        predict_batches(predict, images, 2, tta="twelve-crop")


def test_exported_ten_crop_graph_matches_the_numpy_views(tiny_checkpoint, tiny_onnx, tmp_path):
    from nasfer.cli import main
    from nasfer.runtime.engine import Classifier

    out = tmp_path / "ten.onnx"
    assert main(["export", "--checkpoint", str(tiny_checkpoint), "--out", str(out), "--ten-crop"]) == 0
    card = json.loads(out.with_suffix(".json").read_text())
    assert card["onnx"]["tta"] == "ten-crop" and builtin_tta(card) == "ten-crop"
    plain = json.loads(tiny_onnx.with_suffix(".json").read_text())
    assert card["architecture"]["flops"] == 10 * plain["architecture"]["flops"]
    crops = np.random.default_rng(1).integers(0, 256, (4, 48, 48), dtype=np.uint8)
    expected = predict_batches(Classifier(tiny_onnx).predict, crops, 4, tta="ten-crop")
    np.testing.assert_allclose(Classifier(out).predict(crops), expected, atol=1e-5)
    assert main(["export", "--checkpoint", str(tiny_checkpoint), "--out", str(tmp_path / "x.onnx"),
                 "--ten-crop", "--tta"]) == 2


def test_builtin_tta_reads_old_and_new_cards():
    assert builtin_tta({"onnx": {"tta": True}}) == "flip"
    assert builtin_tta({"onnx": {"tta": "flip"}}) == "flip"
    assert builtin_tta({"onnx": {"tta": False}}) is None
    assert builtin_tta({}) is None and builtin_tta(None) is None
