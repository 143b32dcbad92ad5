"""Review fixes: the latency cache under concurrent writers (Ray trials, searches sharing --latency-cache),
damaged cache files, and an unwritable --latency-cache location (a one-line error, not a traceback)."""

from __future__ import annotations

import json
import multiprocessing
import threading

import pytest

from nasfer.errors import NasferError
from nasfer.nas import latency as lat
from nasfer.nas.config import SearchConfig
from nasfer.nas.fidelity import Fidelity

WRITERS, PER_WRITER = 6, 8


def _entry(writer: int, i: int) -> dict:
    return {"ms_per_face_b1": writer + i / 100, "ms_per_face_b64": 0.5, "params": 1}


def _save_entries(path: str, writer: int) -> None:
    """One writer: its own cache object, saving its entries one at a time (as a trial or a search does)."""
    for i in range(PER_WRITER):
        cache = lat.LatencyCache(path)
        cache.entries[f"w{writer}-{i}"] = _entry(writer, i)
        cache.save()


def _check_union(path, tmp_path) -> None:
    entries = json.loads(path.read_text())["entries"]  # valid JSON
    assert entries == {f"w{w}-{i}": _entry(w, i) for w in range(WRITERS) for i in range(PER_WRITER)}
    assert not list(tmp_path.glob("*.tmp"))  # every temporary file was renamed or removed


def test_threads_saving_one_cache_keep_every_entry(tmp_path):
    path = tmp_path / "cache.json"
    errors: list[BaseException] = []

    def run(writer: int) -> None:
        try:
            _save_entries(str(path), writer)
        except BaseException as exc:  # noqa: BLE001 - reported by the assertion below
            errors.append(exc)

    threads = [threading.Thread(target=run, args=(w,)) for w in range(WRITERS)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []  # no FileNotFoundError from a shared temporary name
    _check_union(path, tmp_path)


def test_processes_saving_one_cache_keep_every_entry(tmp_path):
    """The Ray backend's trials are processes writing the search's one cache file."""
    path = tmp_path / "cache.json"
    context = multiprocessing.get_context("fork")
    processes = [context.Process(target=_save_entries, args=(str(path), w)) for w in range(WRITERS)]
    for p in processes:
        p.start()
    for p in processes:
        p.join(120)
    assert [p.exitcode for p in processes] == [0] * WRITERS
    _check_union(path, tmp_path)


def test_a_save_merges_what_another_cache_saved_since_it_was_read(tmp_path, monkeypatch):
    monkeypatch.setattr(lat, "measure_latency", lambda name, kwargs, **t: {"ms_per_face_b1": len(kwargs["w"])})
    path = tmp_path / "cache.json"
    first, second = lat.LatencyCache(path), lat.LatencyCache(path)  # both read an empty cache
    first.get("macro", {"w": "a"})
    second.get("macro", {"w": "bb"})  # used to overwrite the file with its own entry only
    assert len(json.loads(path.read_text())["entries"]) == 2
    assert len(second.entries) == 2  # the saver learns the other's measurements too
    assert len(lat.LatencyCache(path).entries) == 2


def test_a_complete_measurement_is_never_replaced_by_a_capped_one():
    complete, capped = {"ms_per_face_b1": 2.0, "ms_per_face_b64": 1.0}, {"ms_per_face_b1": 2.0,
                                                                       "ms_per_face_b64": None, "over_cap": [1, 1.0]}
    assert lat.merge_entries({"k": complete}, {"k": capped}) == {"k": complete}
    assert lat.merge_entries({"k": capped}, {"k": complete}) == {"k": complete}
    assert lat.merge_entries({"a": complete}, {"b": capped}) == {"a": complete, "b": capped}


@pytest.mark.parametrize("data", [b'{"machine": {}, "entries": {"k": {"ms_per_fa', b"", b"[1, 2]", b'{"entries": [1]}',
                                  b'{"entries": {"k": "\xff\xfe"}}'])
def test_a_cut_off_or_damaged_cache_reads_as_empty_and_is_rewritten(tmp_path, data):
    path = tmp_path / "cache.json"
    path.write_bytes(data)
    cache = lat.LatencyCache(path)
    assert cache.entries == {}
    cache.entries["k"] = {"ms_per_face_b1": 1.0}
    cache.save()
    assert json.loads(path.read_text())["entries"] == {"k": {"ms_per_face_b1": 1.0}}


def test_entries_that_are_not_measurements_are_skipped(tmp_path):
    path = tmp_path / "cache.json"
    good = {"ms_per_face_b1": 1.0}
    path.write_text(json.dumps({"entries": {"good": good, "number": 3, "list": [1], "bad_cap": {"over_cap": 7}}}))
    cache = lat.LatencyCache(path, cap=(1, 0.5))
    assert set(cache.entries) == {"good", "bad_cap"} and not cache.usable(cache.entries["bad_cap"])


def test_an_unwritable_cache_location_is_a_one_line_error(tmp_path):
    blocker = tmp_path / "a-file"
    blocker.write_text("")
    bad = blocker / "sub" / "cache.json"  # a folder cannot be made under a file (whatever the user's rights)
    with pytest.raises(lat.LatencyCacheError, match=r"latency cache .*cache\.json: cannot write it .*--latency-cache"):
        lat.check_cache_location(bad)
    cache = lat.LatencyCache(bad)  # reading a cache that cannot exist: nothing cached
    cache.entries["k"] = {"ms_per_face_b1": 1.0}
    with pytest.raises(lat.LatencyCacheError) as error:
        cache.save()
    assert isinstance(error.value, NasferError) and "\n" not in str(error.value)
    with pytest.raises(lat.LatencyCacheError, match="is a folder"):
        lat.check_cache_location(tmp_path)
    with pytest.raises(lat.LatencyCacheError, match="is a folder"):
        lat.LatencyCache(tmp_path).save()
    assert not (tmp_path.parent / (tmp_path.name + ".lock")).exists()  # nothing written beside the folder


def test_a_chosen_cache_folder_is_created(tmp_path):
    path = tmp_path / "new" / "deeper" / "cache.json"
    lat.check_cache_location(path)
    assert path.parent.is_dir()
    cache = lat.LatencyCache(path)
    cache.entries["k"] = {"ms_per_face_b1": 1.0}
    cache.save()
    assert json.loads(path.read_text())["entries"]["k"] == {"ms_per_face_b1": 1.0}


def _toy(spec: dict, fidelity: Fidelity) -> float:
    return 0.5


def _bad_cache_cfg(tmp_path) -> SearchConfig:
    blocker = tmp_path / "a-file"
    blocker.write_text("")
    return SearchConfig(out=str(tmp_path / "search"), strategy="random", budget_minutes=5, max_children=20,
                        rungs=("3s@16",), eta=2, blocks=2, progress=False, latency_target_ms=2.0,
                        latency_cache=str(blocker / "sub" / "cache.json"))


def test_the_local_search_refuses_an_unwritable_cache_before_starting(tmp_path, monkeypatch):
    """Before: each child failed on the cache, and after MAX_FAILURES_IN_A_ROW the search stopped. Now the
    location is checked first, as the Ray backend does: one error naming the cache, nothing written."""
    from nasfer.nas.search import search

    monkeypatch.setattr(lat, "measure_latency", lambda name, kwargs, **t: {"ms_per_face_b1": 1.0})
    with pytest.raises(lat.LatencyCacheError, match="latency cache .* cannot write it"):
        search(_bad_cache_cfg(tmp_path), _toy)
    assert not (tmp_path / "search").exists()


def test_the_ray_search_refuses_an_unwritable_cache_before_starting(tmp_path):
    pytest.importorskip("ray.tune")
    from nasfer.nas.ray_backend import RaySearchConfig, search

    cfg = _bad_cache_cfg(tmp_path)
    with pytest.raises(lat.LatencyCacheError, match="cannot write it"):
        search(cfg, RaySearchConfig(backend="ray"), evaluate=_toy)
    assert not (tmp_path / "search").exists()  # refused before anything was written
