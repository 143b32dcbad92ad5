"""Shipped models: every one loads through the engine, and bare names resolve to them."""

from __future__ import annotations

import numpy as np
import pytest

from nasfer.errors import ModelError
from nasfer.weights import default_model_path, resolve_model, shipped_models


def test_default_is_shipped_and_resolves_from_none_and_its_name():
    assert "default" in shipped_models()
    assert resolve_model(None) == default_model_path() == resolve_model("default")


@pytest.mark.parametrize("name", sorted(shipped_models()))
def test_every_shipped_model_classifies_by_name(name):
    from nasfer.runtime.engine import Classifier

    clf = Classifier(name, threads=1)
    assert clf.model_path == shipped_models()[name]
    probs = clf.predict(np.full((3, 48, 48), 128, np.uint8))
    assert probs.shape == (3, len(clf.labels))
    np.testing.assert_allclose(probs.sum(1), 1.0, atol=1e-4)


def test_unknown_bare_name_lists_the_shipped_ones(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    with pytest.raises(ModelError, match="no shipped model of that name.*default"):
        resolve_model("no-such-model")


def test_a_file_in_the_working_directory_wins_over_a_shipped_name(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "fast").write_bytes(b"not a model")
    assert resolve_model("fast").resolve() == (tmp_path / "fast").resolve()


def test_missing_path_is_a_clear_error():
    with pytest.raises(ModelError, match="model file not found"):
        resolve_model("/nonexistent/model.onnx")
