"""Latency of the network that ships: the exported ONNX graph timed in ONNX Runtime's CPU provider.

`measure_latency(name, kwargs)` builds the registered model, exports it with `nasfer.export.export_onnx`
(the same graph `nasfer export` writes: input (N, 1, 48, 48) float32, softmax output), and times it in
an `onnxruntime.InferenceSession` with 1 intra-op and 1 inter-op thread, sequential execution, at batch
1 and batch 64: `warmup` runs first, then the median of `runs_b1` (`runs_b64`) timed runs (fewer, at
least 3, for a network so slow that they would take over `max_seconds`). Results
are milliseconds per face (batch-64 time / 64 for the throughput figure). With a cap (`cap=(batch, ms)`,
the search's `--max-latency-ms`), timing stops as soon as the median of 3 timed runs at that batch is over
the cap: such a network is not trained, so its exact latency and the other batch sizes (None) are not needed.

`LatencyCache` keeps them in a JSON file keyed by architecture hash (`space.spec_key` of the model
name and kwargs), so a child is measured once per search, and a cache file can be shared across
searches on the same machine. Timings depend on the machine and on what else runs on it: a search
records the machine beside them. Several processes may write one cache file at the same time (the Ray
backend's trials, searches sharing `--latency-cache`): a save holds an exclusive lock on
`<cache>.lock` (`fcntl.flock`; none where fcntl does not exist), reads the file again, writes the union
of its entries and the saver's through a temporary file of its own (`nasfer.atomic`), so readers never
see a half-written file and no writer drops another's measurements.

`mnas_reward` is MnasNet's soft latency objective (Tan et al. 2019): acc * (latency / target) ** w.
"""

from __future__ import annotations

import json
import math
import os
import platform
import statistics
import tempfile
import time
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Iterator

from ..atomic import write_text_atomic
from ..errors import NasferError
from .space import spec_key

LATENCY_BATCHES = (1, 64)


def mnas_reward(accuracy: float, latency_ms: float | None, target_ms: float, w: float) -> float:
    """accuracy * (latency / target) ** w; plain accuracy when target <= 0 or latency is None (w < 0 penalises slow)."""
    if target_ms <= 0 or latency_ms is None:
        return float(accuracy)
    return float(accuracy) * (max(latency_ms, 1e-6) / target_ms) ** w


def _time_session(session, x, warmup: int, runs: int, max_seconds: float, stop_above_ms: float = math.inf) -> float:
    """Median ms of `runs` timed runs after `warmup` ones; a very slow network stops after at least 3 timed
    runs once `max_seconds` have passed, so timing it never costs more than a few seconds, and any network
    stops after 3 timed runs whose median is over `stop_above_ms` (ms per run)."""
    feed = {session.get_inputs()[0].name: x}
    began = time.perf_counter()
    for _ in range(warmup):
        session.run(None, feed)
        if time.perf_counter() - began > max_seconds / 4:
            break
    times: list[float] = []
    began = time.perf_counter()
    while len(times) < runs and (len(times) < 3 or time.perf_counter() - began < max_seconds):
        start = time.perf_counter()
        session.run(None, feed)
        times.append((time.perf_counter() - start) * 1e3)
        if len(times) == 3 and statistics.median(times) > stop_above_ms:
            break
    return statistics.median(times)


def onnx_latency(onnx_path: str | os.PathLike, *, size: int = 48, channels: int = 1, warmup: int = 10,
                 runs_b1: int = 100, runs_b64: int = 10, max_seconds: float = 5.0,
                 cap: tuple[int, float] | None = None) -> dict[str, Any]:
    """{"ms_per_face_b1", "ms_per_face_b64"} of an ONNX classifier in ONNX Runtime CPU, 1 thread.

    cap: (batch, ms per face). Once the network is known to be slower than that at that batch (median of 3
    timed runs), timing stops: the batches not yet timed are None and "over_cap" is [batch, ms].
    """
    import numpy as np
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.intra_op_num_threads = 1
    options.inter_op_num_threads = 1
    options.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    session = ort.InferenceSession(str(onnx_path), options, providers=["CPUExecutionProvider"])
    rng = np.random.default_rng(0)
    out: dict[str, Any] = {f"ms_per_face_b{batch}": None for batch in LATENCY_BATCHES}
    for batch, runs in zip(LATENCY_BATCHES, (runs_b1, runs_b64)):
        x = rng.standard_normal((batch, channels, size, size), dtype=np.float32)
        over = cap is not None and cap[0] == batch
        ms = _time_session(session, x, warmup, runs, max_seconds, cap[1] * batch if over else math.inf) / batch
        out[f"ms_per_face_b{batch}"] = ms
        if over and ms > cap[1]:
            out["over_cap"] = [batch, cap[1]]
            break
    return out


def measure_latency(name: str, kwargs: dict[str, Any], *, num_classes: int = 7, **timing: Any) -> dict[str, Any]:
    """Export the registered model `name(**kwargs)` to ONNX and time it (see `onnx_latency`).

    Returns ms_per_face_b1, ms_per_face_b64, params and onnx_bytes.
    """
    import torch

    from ..export import export_onnx
    from ..models import create_model
    from ..preprocessing import Preprocessing

    with torch.random.fork_rng():
        torch.manual_seed(0)
        model = create_model(name, num_classes=num_classes, in_channels=1, **kwargs).eval()
    params = sum(p.numel() for p in model.parameters())
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "model.onnx"
        export_onnx(model, path, Preprocessing())
        result = onnx_latency(path, **timing)
        result["onnx_bytes"] = path.stat().st_size
    return {**result, "params": int(params)}


def architecture_key(name: str, kwargs: dict[str, Any]) -> str:
    return spec_key({"model": name, "kwargs": kwargs})


class LatencyCacheError(NasferError):
    """The latency cache file cannot be read or written (the message names the file and the reason)."""


def _lock_path(path: Path) -> Path:
    return path.with_name(path.name + ".lock")


@contextmanager
def _locked(path: Path) -> Iterator[None]:
    """Hold the exclusive lock of the cache file `path` (`<path>.lock`, created if missing) for the block,
    waiting for another holder to release it; no lock where fcntl does not exist. OSError if the lock file
    cannot be made."""
    try:
        import fcntl
    except ImportError:  # pragma: no cover - not POSIX
        yield
        return
    with open(_lock_path(path), "a") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def _cache_error(path: Path, doing: str, exc: OSError) -> LatencyCacheError:
    where = "a file in a writable folder" if doing == "write" else "a file this user can read"
    return LatencyCacheError(f"latency cache {path}: cannot {doing} it ({exc.strerror or exc}); give "
                             f"--latency-cache {where}")


def read_cache_entries(path: Path) -> dict[str, dict[str, Any]]:
    """The entries of the cache file `path`: {} when it is missing or damaged (a damaged cache is only lost
    time, never wrong numbers: they are measured again), and an entry that is not a JSON object is skipped.
    LatencyCacheError when the file exists but cannot be read (permissions, I/O error)."""
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (FileNotFoundError, IsADirectoryError, NotADirectoryError):
        return {}  # nothing cached yet (a folder or a path through a file fails when saved, with its reason)
    except ValueError:  # JSONDecodeError, UnicodeDecodeError: cut off or overwritten
        return {}
    except OSError as exc:
        raise _cache_error(path, "read", exc) from None
    entries = data.get("entries") if isinstance(data, dict) else None
    if not isinstance(entries, dict):
        return {}
    return {str(key): entry for key, entry in entries.items() if isinstance(entry, dict)}


def _complete(entry: dict[str, Any]) -> bool:
    return "over_cap" not in entry


def merge_entries(theirs: dict[str, dict[str, Any]], ours: dict[str, dict[str, Any]]) -> dict[str, dict[str, Any]]:
    """The union of two caches' entries; for an architecture in both, ours, unless theirs is complete and
    ours stopped over a cap (the complete measurement answers every caller)."""
    merged = dict(theirs)
    for key, entry in ours.items():
        if key not in merged or _complete(entry) or not _complete(merged[key]):
            merged[key] = entry
    return merged


def _not_a_folder(path: Path) -> None:
    if path.is_dir():
        raise LatencyCacheError(f"latency cache {path}: is a folder; give --latency-cache a file name "
                                "(e.g. latency_cache.json)")


def check_cache_location(path: str | os.PathLike) -> None:
    """LatencyCacheError unless a latency cache can be written at `path`: its folder is created if missing
    (a path the user chose) and the lock file beside it opened, so a search learns of an unwritable
    `--latency-cache` before its first child rather than from every child's failure; and a file there that
    is not a latency cache (other JSON or text; a cut-off cache is only damaged) is refused, not replaced."""
    path = Path(path)
    _not_a_folder(path)
    try:
        text = path.read_bytes().decode("utf-8", "replace").strip() if path.is_file() else ""
    except OSError:
        text = ""  # unreadable: read_cache_entries below says why
    try:
        data = json.loads(text) if text else {"entries": {}}
    except ValueError:  # cut off: a damaged cache (read as empty, rewritten) if it began as one
        data = {"entries": {}} if text.startswith("{") else None
    if not (isinstance(data, dict) and "entries" in data):  # before: replaced, e.g. a search's summary.json
        raise LatencyCacheError(f"latency cache {path}: this file is not a latency cache, and saving one would "
                                "replace it; give --latency-cache a new file name or a latency_cache.json")
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        with open(_lock_path(path), "a"):
            pass
    except OSError as exc:
        raise _cache_error(path, "write", exc) from None
    read_cache_entries(path)  # a file that exists but cannot be read


class LatencyCache:
    """Latency measurements by architecture hash, persisted as JSON at `path` (None: in memory only).

    A cache file that is damaged (cut off, not JSON) is read as empty; LatencyCacheError when it exists but
    cannot be read, and from `get`/`save` when it cannot be written.
    """

    def __init__(self, path: str | os.PathLike | None = None, **timing: Any):
        self.path = Path(path) if path else None
        self.timing = timing
        self.entries: dict[str, dict[str, Any]] = {}
        if self.path is not None:
            self.entries = read_cache_entries(self.path)

    def get(self, name: str, kwargs: dict[str, Any]) -> dict[str, Any]:
        key = architecture_key(name, kwargs)
        if not self.usable(self.entries.get(key)):
            self.entries[key] = measure_latency(name, kwargs, **self.timing)
            self.save()
        return self.entries[key]

    def usable(self, entry: dict[str, Any] | None) -> bool:
        """Whether a stored entry answers this cache's callers: complete, or stopped over a cap at the same
        batch that is over this cache's cap too (a search with a higher cap, or none, re-measures it)."""
        if entry is None:
            return False
        if _complete(entry):
            return True
        cap = self.timing.get("cap")
        try:
            batch = entry["over_cap"][0]
            return cap is not None and cap[0] == batch and entry[f"ms_per_face_b{batch}"] > cap[1]
        except (KeyError, IndexError, TypeError):  # not an entry this module wrote: measured again
            return False

    def save(self) -> None:
        """Write the entries to `path`, merged (`merge_entries`) with those other processes saved there since,
        under the file's lock; the cache then holds the union too. The folder is created if missing.
        LatencyCacheError when the file cannot be written (or read)."""
        if self.path is None:
            return
        _not_a_folder(self.path)
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            with _locked(self.path):
                self.entries = merge_entries(read_cache_entries(self.path), self.entries)
                text = json.dumps({"machine": machine(), "runtime": "onnxruntime CPU, 1 intra-op thread",
                                   "entries": self.entries}, indent=0)
                write_text_atomic(self.path, text)
        except OSError as exc:
            raise _cache_error(self.path, "write", exc) from None


def machine() -> dict[str, Any]:
    import onnxruntime

    return {"platform": platform.platform(), "processor": platform.processor() or platform.machine(),
            "cpus": os.cpu_count(), "onnxruntime": onnxruntime.__version__}
