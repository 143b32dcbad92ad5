"""Latency on the exported ONNX graph in ONNX Runtime (1 thread), cached by architecture hash; MnasNet reward."""

import json

import pytest

from nasfer.nas import latency as lat
from nasfer.nas.macro import vgg_spec


def test_latency_is_measured_on_the_exported_onnx_graph(monkeypatch):
    exported = []
    real_export = __import__("nasfer.export", fromlist=["export_onnx"]).export_onnx

    def spy(model, path, preprocessing, **kw):
        exported.append(path)
        return real_export(model, path, preprocessing, **kw)

    monkeypatch.setattr("nasfer.export.export_onnx", spy)
    result = lat.measure_latency("macro", {"spec": vgg_spec(4)}, warmup=2, runs_b1=5, runs_b64=2)
    assert len(exported) == 1 and str(exported[0]).endswith(".onnx")
    assert result["ms_per_face_b1"] > 0 and result["ms_per_face_b64"] > 0
    assert result["params"] > 0 and result["onnx_bytes"] > 1000


def test_cache_by_architecture_hash_persists_and_measures_once(tmp_path, monkeypatch):
    calls = []
    monkeypatch.setattr(lat, "measure_latency", lambda name, kwargs, **t: calls.append(name) or {"ms_per_face_b1": 0.1})
    path = tmp_path / "cache.json"
    cache = lat.LatencyCache(path)
    assert cache.get("macro", {"spec": vgg_spec(8)}) == {"ms_per_face_b1": 0.1}
    cache.get("macro", {"spec": vgg_spec(8)})
    assert calls == ["macro"]
    again = lat.LatencyCache(path)  # another search on this machine reuses it
    again.get("macro", {"spec": vgg_spec(8)})
    assert calls == ["macro"] and json.loads(path.read_text())["machine"]["cpus"] >= 1
    again.get("macro", {"spec": vgg_spec(16)})
    assert calls == ["macro", "macro"]
    path.write_text("{broken")
    assert lat.LatencyCache(path).entries == {}  # a damaged cache is re-measured, not an error


def test_mnas_reward():
    assert lat.mnas_reward(0.6, 10.0, 10.0, -0.07) == pytest.approx(0.6)
    assert lat.mnas_reward(0.6, 20.0, 10.0, -0.07) == pytest.approx(0.6 * 2 ** -0.07)
    assert lat.mnas_reward(0.6, None, 10.0, -0.07) == 0.6 and lat.mnas_reward(0.6, 5.0, 0.0, -0.07) == 0.6
