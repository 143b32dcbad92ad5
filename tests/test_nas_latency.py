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


def test_a_network_over_the_cap_is_timed_only_until_that_is_known():
    """The search's --max-latency-ms: a child over it is not trained, so timing it stops after 3 runs at the
    capped batch and the other batch sizes are not timed (most of a search's wasted seconds otherwise)."""

    class Session:
        runs = 0

        def get_inputs(self):
            return [type("Input", (), {"name": "input"})()]

        def run(self, outputs, feed):
            Session.runs += 1

    median = lat._time_session(Session(), None, warmup=2, runs=100, max_seconds=60, stop_above_ms=-1.0)
    assert Session.runs == 2 + 3 and median >= 0
    Session.runs = 0
    lat._time_session(Session(), None, warmup=2, runs=100, max_seconds=60)
    assert Session.runs == 2 + 100

    spec = {"spec": vgg_spec(4)}
    over = lat.measure_latency("macro", spec, warmup=1, runs_b1=20, runs_b64=2, cap=(1, 1e-6))
    assert over["ms_per_face_b1"] > 1e-6 and over["ms_per_face_b64"] is None and over["over_cap"] == [1, 1e-6]
    under = lat.measure_latency("macro", spec, warmup=1, runs_b1=5, runs_b64=2, cap=(1, 1e6))
    assert under["ms_per_face_b64"] > 0 and "over_cap" not in under


def test_cache_reuses_a_capped_entry_only_for_a_cap_it_is_over(tmp_path, monkeypatch):
    calls = []

    def fake(name, kwargs, cap=None):
        calls.append(cap)
        return ({"ms_per_face_b1": 2.0, "ms_per_face_b64": None, "over_cap": list(cap)} if cap and cap[1] < 2.0
                else {"ms_per_face_b1": 2.0, "ms_per_face_b64": 1.5})

    monkeypatch.setattr(lat, "measure_latency", fake)
    path, spec = tmp_path / "cache.json", {"spec": vgg_spec(8)}
    assert lat.LatencyCache(path, cap=(1, 1.5)).get("macro", spec)["ms_per_face_b64"] is None
    assert lat.LatencyCache(path, cap=(1, 1.0)).get("macro", spec)["over_cap"] == [1, 1.5]  # over 1.0 too: reused
    assert len(calls) == 1
    full = lat.LatencyCache(path, cap=(1, 3.0)).get("macro", spec)  # a higher cap needs the full measurement
    assert full["ms_per_face_b64"] == 1.5 and len(calls) == 2
    assert lat.LatencyCache(path).get("macro", spec) == full and len(calls) == 2
