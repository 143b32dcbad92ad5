"""`nasfer search` after a third review, as a user runs it: a folder of the other backend, flags that only mean
something with another setting. Toy rewards: no child is trained."""

import json

import pytest
from fixtures_nas import fake_latency

from nasfer.errors import ModelError
from nasfer.nas.config import SearchConfig
from nasfer.nas.search import LOG_FILE, search

TOY = dict(strategy="random", budget_minutes=5, blocks=2, rungs=("10s@24",), latency_target_ms=0.0,
           max_latency_ms=0.0, progress=False)


def _toy(spec, fidelity):
    """A deterministic accuracy from the spec (no training)."""
    return (len(json.dumps(spec, sort_keys=True)) % 97) / 100


def test_the_local_backend_refuses_a_ray_search_folder(tmp_path):
    """Before: without --backend ray, a Ray search's folder (no search_state.pt) was taken for a new search, whose
    lines were appended to the Ray search's log and whose result files replaced the Ray search's. Now refused, as
    the Ray backend refuses a local search's folder; nothing there changes."""
    out = tmp_path / "s"
    out.mkdir()
    ray_line = json.dumps({"kind": "child", "rung": 0, "child": 0, "key": "k", "trial_id": "t0", "job": 1}) + "\n"
    (out / LOG_FILE).write_text(ray_line)
    (out / "ray_clock.json").write_text(json.dumps({"elapsed_s": 12.0}) + "\n")
    (out / "ray_tune").mkdir()
    with pytest.raises(ModelError, match="search of the Ray backend; continue it with --backend ray"):
        search(SearchConfig(out=str(out), max_children=2, **TOY), _toy, latency=fake_latency)
    assert (out / LOG_FILE).read_text() == ray_line
    assert sorted(p.name for p in out.iterdir()) == sorted([LOG_FILE, "ray_clock.json", "ray_tune"])
