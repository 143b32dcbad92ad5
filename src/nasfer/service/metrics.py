"""Prometheus metrics written by hand (text exposition format 0.0.4), across gunicorn workers.

Each worker counts in memory. When `NASFER_METRICS_DIR` is set (the `serve` command sets it to a
fresh temporary directory before gunicorn forks its workers), every worker also writes a snapshot
of its counts there at most once a second and whenever it answers a scrape, and `/metrics` sums the
live counts of the worker that answers with the snapshots of all the others, so a scrape sees the
whole server whichever worker it reaches, and never less than the scrape before. Counters of workers
that exited stay in the sum, keeping counters monotonic.
"""

from __future__ import annotations

import json
import logging
import math
import os
import tempfile
import threading
import uuid
from pathlib import Path
from typing import Iterable

ENV_DIR = "NASFER_METRICS_DIR"

log = logging.getLogger("nasfer.service.metrics")

LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.075, 0.1, 0.25, 0.5, 0.75, 1.0, 2.5, 5.0, 10.0)
FACE_BUCKETS = (0, 1, 2, 3, 5, 10, 20, 50)

#: name -> (type, help, buckets or None)
DEFINITIONS: dict[str, tuple[str, str, tuple[float, ...] | None]] = {
    "nasfer_http_requests_total": ("counter", "HTTP requests answered, by route, method and status code.", None),
    "nasfer_http_request_duration_seconds": (
        "histogram", "Time from request start to response, by route.", LATENCY_BUCKETS),
    "nasfer_images_processed_total": ("counter", "Images decoded and run through detection, by detector.", None),
    "nasfer_faces_detected_total": ("counter", "Faces found and classified, by detector.", None),
    "nasfer_faces_per_image": ("histogram", "Faces found per image.", FACE_BUCKETS),
    "nasfer_inference_duration_seconds": (
        "histogram", "Face detection plus emotion classification time per image, by detector.", LATENCY_BUCKETS),
    "nasfer_predictions_total": ("counter", "Faces by predicted emotion.", None),
    "nasfer_model_info": ("gauge", "The loaded emotion model (value is always 1).", None),
    "nasfer_metrics_flush_errors_total": (
        "counter", "Failed writes of this server's metrics snapshots (e.g. a full disk); see the log.", None),
}

LabelKey = tuple[tuple[str, str], ...]


def _key(labels: dict[str, object] | None) -> LabelKey:
    return tuple(sorted((str(k), str(v)) for k, v in (labels or {}).items()))


class Metrics:
    """Thread-safe counters, histograms and gauges for one process, optionally shared via a directory."""

    def __init__(self, directory: str | os.PathLike | None = None, flush_interval: float = 1.0):
        self.directory = Path(directory) if directory else None
        self.flush_interval = flush_interval
        self._lock = threading.Lock()
        self._counters: dict[tuple[str, LabelKey], float] = {}
        self._hists: dict[tuple[str, LabelKey], list[float]] = {}  # bucket counts..., +Inf, sum
        self._gauges: dict[tuple[str, LabelKey], float] = {}
        self._dirty = False
        self._pid = os.getpid()
        self._file: Path | None = None
        self._flusher: threading.Thread | None = None
        self._stop = threading.Event()
        self.flush_errors = 0

    @classmethod
    def from_environment(cls) -> "Metrics":
        return cls(os.environ.get(ENV_DIR) or None)

    # -- recording ---------------------------------------------------------------------------
    def inc(self, name: str, labels: dict[str, object] | None = None, value: float = 1.0) -> None:
        self._check(name, "counter")
        k = (name, _key(labels))
        with self._lock:
            self._counters[k] = self._counters.get(k, 0.0) + value
            self._dirty = True
        self._ensure_flusher()

    def observe(self, name: str, value: float, labels: dict[str, object] | None = None) -> None:
        buckets = self._check(name, "histogram")
        k = (name, _key(labels))
        with self._lock:
            h = self._hists.get(k)
            if h is None:
                h = self._hists[k] = [0.0] * (len(buckets) + 2)
            for i, bound in enumerate(buckets):
                if value <= bound:
                    h[i] += 1
                    break
            else:
                h[len(buckets)] += 1
            h[-1] += value
            self._dirty = True
        self._ensure_flusher()

    def set(self, name: str, value: float, labels: dict[str, object] | None = None) -> None:
        self._check(name, "gauge")
        with self._lock:
            self._gauges[(name, _key(labels))] = value
            self._dirty = True
        self._ensure_flusher()

    @staticmethod
    def _check(name: str, kind: str) -> tuple[float, ...]:
        definition = DEFINITIONS.get(name)
        if definition is None or definition[0] != kind:
            raise KeyError(f"{name!r} is not a defined {kind}")
        return definition[2] or ()

    # -- sharing between worker processes -----------------------------------------------------
    def snapshot(self) -> dict:
        with self._lock:
            return {
                "counters": [[n, list(map(list, k)), v] for (n, k), v in self._counters.items()],
                "hists": [[n, list(map(list, k)), list(v)] for (n, k), v in self._hists.items()],
                "gauges": [[n, list(map(list, k)), v] for (n, k), v in self._gauges.items()],
            }

    def flush(self) -> None:
        """Write this process's snapshot (atomically) where the other workers can read it.
        Raises OSError (the temporary file is removed) when it cannot be written."""
        if self.directory is None:
            return
        with self._lock:
            if not self._dirty:
                return
            self._dirty = False
        path = self._own_file()
        data = json.dumps(self.snapshot(), separators=(",", ":"))
        tmp = None
        try:
            fd, tmp = tempfile.mkstemp(dir=self.directory, prefix=".tmp-")
            with os.fdopen(fd, "w") as fh:
                fh.write(data)
            os.replace(tmp, path)
        except OSError:
            with self._lock:
                self._dirty = True  # try again next time
            if tmp is not None:
                try:
                    os.unlink(tmp)
                except OSError:
                    pass
            raise

    def _own_file(self) -> Path:
        if self._file is None or self._pid != os.getpid():
            self._pid = os.getpid()
            self._file = self.directory / f"worker-{self._pid}-{uuid.uuid4().hex[:8]}.json"  # type: ignore[operator]
        return self._file

    def _ensure_flusher(self) -> None:
        if self.directory is None:
            return
        if self._flusher is not None and self._pid == os.getpid() and self._flusher.is_alive():
            return
        with self._lock:
            if self._flusher is not None and self._pid == os.getpid() and self._flusher.is_alive():
                return
            self._pid = os.getpid()  # a forked copy starts its own file and thread
            self._file = None
            self._stop = threading.Event()
            self._flusher = threading.Thread(target=self._flush_loop, name="nasfer-metrics", daemon=True)
            self._flusher.start()

    def _flush_loop(self) -> None:
        """Flush every `flush_interval` s. A failure never kills the worker: it is counted
        (nasfer_metrics_flush_errors_total) and logged, the first time and then every 60th time."""
        while not self._stop.wait(self.flush_interval):
            try:
                self.flush()
            except Exception as exc:
                self.flush_errors += 1
                with self._lock:
                    k = ("nasfer_metrics_flush_errors_total", ())
                    self._counters[k] = self._counters.get(k, 0.0) + 1
                if self.flush_errors % 60 == 1:
                    log.warning("cannot write the metrics snapshot to %s (%d failure(s) so far): %s",
                                self.directory, self.flush_errors, exc)

    def close(self) -> None:
        self._stop.set()
        try:
            self.flush()
        except OSError as exc:
            log.warning("cannot write the last metrics snapshot to %s: %s", self.directory, exc)

    def _others(self) -> Iterable[dict]:
        if self.directory is None or not self.directory.is_dir():
            return
        own = self._file.name if self._file is not None and self._pid == os.getpid() else None
        for path in sorted(self.directory.glob("worker-*.json")):
            if path.name == own:
                continue
            try:
                yield json.loads(path.read_text())
            except (OSError, ValueError):
                continue  # a file being replaced right now: skip this scrape

    # -- exposition ---------------------------------------------------------------------------
    def render(self) -> str:
        """All metrics of the server in Prometheus text format.

        The answering worker first writes its own snapshot, so the next scrape, whichever worker answers it,
        counts at least what this one reported: counters never go down between scrapes (before, a worker's
        live counts could be seen by one scrape and only its older snapshot by the next)."""
        try:
            self.flush()
        except OSError:
            pass  # counted and logged by the flusher thread; this scrape still answers
        counters: dict[tuple[str, LabelKey], float] = {}
        hists: dict[tuple[str, LabelKey], list[float]] = {}
        gauges: dict[tuple[str, LabelKey], float] = {}
        for snap in [self.snapshot(), *self._others()]:
            for name, labels, value in snap.get("counters", []):
                k = (name, tuple(map(tuple, labels)))
                counters[k] = counters.get(k, 0.0) + float(value)
            for name, labels, values in snap.get("hists", []):
                k = (name, tuple(map(tuple, labels)))
                if k in hists and len(hists[k]) == len(values):
                    hists[k] = [a + float(b) for a, b in zip(hists[k], values)]
                else:
                    hists[k] = [float(v) for v in values]
            for name, labels, value in snap.get("gauges", []):
                k = (name, tuple(map(tuple, labels)))
                gauges[k] = max(gauges.get(k, -math.inf), float(value))

        lines: list[str] = []
        for name, (kind, help_text, buckets) in DEFINITIONS.items():
            lines.append(f"# HELP {name} {help_text}")
            lines.append(f"# TYPE {name} {kind}")
            if kind == "counter":
                for (n, labels), value in sorted(counters.items()):
                    if n == name:
                        lines.append(f"{name}{_labels(labels)} {_num(value)}")
            elif kind == "gauge":
                for (n, labels), value in sorted(gauges.items()):
                    if n == name:
                        lines.append(f"{name}{_labels(labels)} {_num(value)}")
            else:
                for (n, labels), values in sorted(hists.items()):
                    if n != name or len(values) != len(buckets or ()) + 2:
                        continue
                    cumulative = 0.0
                    for bound, count in zip(buckets or (), values):
                        cumulative += count
                        lines.append(f"{name}_bucket{_labels(labels, ('le', _num(bound)))} {_num(cumulative)}")
                    cumulative += values[len(buckets or ())]
                    lines.append(f"{name}_bucket{_labels(labels, ('le', '+Inf'))} {_num(cumulative)}")
                    lines.append(f"{name}_sum{_labels(labels)} {_num(values[-1])}")
                    lines.append(f"{name}_count{_labels(labels)} {_num(cumulative)}")
        return "\n".join(lines) + "\n"


def _escape(value: str) -> str:
    return value.replace("\\", "\\\\").replace("\n", "\\n").replace('"', '\\"')


def _labels(labels: LabelKey, extra: tuple[str, str] | None = None) -> str:
    items = list(labels) + ([extra] if extra else [])
    if not items:
        return ""
    return "{" + ",".join(f'{k}="{_escape(v)}"' for k, v in items) + "}"


def _num(value: float) -> str:
    if math.isinf(value):
        return "+Inf" if value > 0 else "-Inf"
    if float(value).is_integer() and abs(value) < 1e15:
        return str(int(value))
    return repr(float(value))
