"""Prometheus metrics of the service, kept by `prometheus_client`, summed over gunicorn's workers.

Source: prometheus_client's multiprocess mode, https://prometheus.github.io/client_python/multiprocess/
(a process is in it when PROMETHEUS_MULTIPROC_DIR names a directory at the time it imports
prometheus_client; every metric update is then written at once to memory-mapped files of that process
in the directory, and `MultiProcessCollector` reads and combines the files of all processes).

- `nasfer serve` sets PROMETHEUS_MULTIPROC_DIR to a fresh temporary directory before gunicorn forks
  its workers and removes it when the server stops; its gunicorn `child_exit` hook calls
  `mark_process_dead` for each exited worker. This module imports prometheus_client only when a
  `Metrics` is built (in each worker, by `create_app`), never at import.
- Guarantees: `/metrics` reports the counts of all workers summed, whichever worker answers; a counter
  never goes down between two scrapes (each update is in the shared file before the request is
  answered: no snapshot that lags); counts of workers that exited stay in the sums (their counter and
  histogram files are kept); label values are escaped by prometheus_client's text writer; names not in
  `DEFINITIONS`, or used as another type, raise KeyError.
- `nasfer_model_info` is a gauge in multiprocess mode 'livemax': one series per (model, detector)
  with value 1 while a live worker serves that model, with the same labels as in a single process
  (the modes 'all'/'liveall' would add a `pid` label); 'live' because a worker that exited no longer
  serves its model (`mark_process_dead` drops its file; 'max' would keep an old model listed forever).
- Without PROMETHEUS_MULTIPROC_DIR (`create_app` in tests, `nasfer serve --dev`), each `Metrics` keeps
  its own metrics in its own `CollectorRegistry`, so several apps in one process count separately.
  Their `_created` samples are left out so that both modes expose the same series.
- A metric update that cannot be written (the directory was removed) never fails the request: it is
  logged, the first time and then every 60th time, and counted in `Metrics.write_errors`.
  Not caught, as in prometheus_client itself: a full file system under the directory can end the worker
  (the files are memory-mapped), so give the directory room (a few hundred KB per worker started).
"""

from __future__ import annotations

import logging
import os
import threading
from pathlib import Path
from typing import Any, Callable

ENV_DIR = "PROMETHEUS_MULTIPROC_DIR"

log = logging.getLogger("nasfer.service.metrics")

LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.075, 0.1, 0.25, 0.5, 0.75, 1.0, 2.5, 5.0, 10.0)
FACE_BUCKETS = (0, 1, 2, 3, 5, 10, 20, 50)

#: name -> (type, help, label names, buckets or None)
DEFINITIONS: dict[str, tuple[str, str, tuple[str, ...], tuple[float, ...] | None]] = {
    "nasfer_http_requests_total": (
        "counter", "HTTP requests answered, by route, method and status code.", ("route", "method", "status"), None),
    "nasfer_http_request_duration_seconds": (
        "histogram", "Time from request start to response, by route.", ("route",), LATENCY_BUCKETS),
    "nasfer_images_processed_total": (
        "counter", "Images decoded and run through detection, by detector.", ("detector",), None),
    "nasfer_faces_detected_total": ("counter", "Faces found and classified, by detector.", ("detector",), None),
    "nasfer_faces_per_image": ("histogram", "Faces found per image.", (), FACE_BUCKETS),
    "nasfer_inference_duration_seconds": (
        "histogram", "Face detection plus emotion classification time per image, by detector.", ("detector",),
        LATENCY_BUCKETS),
    "nasfer_predictions_total": ("counter", "Faces by predicted emotion.", ("label",), None),
    "nasfer_model_info": ("gauge", "The loaded emotion model (value is always 1).", ("model", "detector"), None),
}

#: How the workers' values of a gauge combine in multiprocess mode (see the module docstring).
GAUGE_MULTIPROCESS_MODE = "livemax"

_shared: dict[str, Any] | None = None  # this process's metrics in multiprocess mode (one set per process)
_shared_lock = threading.Lock()


def _build(registry: Any) -> dict[str, Any]:
    from prometheus_client import Counter, Gauge, Histogram

    classes = {"counter": Counter, "histogram": Histogram, "gauge": Gauge}
    built: dict[str, Any] = {}
    for name, (kind, help_text, labels, buckets) in DEFINITIONS.items():
        options = {"histogram": {"buckets": buckets}, "gauge": {"multiprocess_mode": GAUGE_MULTIPROCESS_MODE}}
        built[name] = classes[kind](name, help_text, labels, registry=registry, **options.get(kind, {}))
    return built


def require_multiprocess(directory: str | os.PathLike) -> None:
    """Import prometheus_client now, in multiprocess mode for `directory` (already in PROMETHEUS_MULTIPROC_DIR),
    so that processes forked from here inherit that mode; RuntimeError when this process cannot write its
    metrics there (prometheus_client was imported before the variable was set, or it names another directory)."""
    from prometheus_client import values

    # prometheus_client's (undocumented) choice of value class; pyproject pins the major version it has held in
    if getattr(values, "ValueClass", None) is getattr(values, "MutexValue", object()):
        raise RuntimeError(f"prometheus_client was imported before {ENV_DIR} was set, so this process keeps its "
                           f"metrics in memory and other workers cannot add them up: set {ENV_DIR} first")
    env = os.environ.get(ENV_DIR)
    if not env or Path(env).resolve() != Path(directory).resolve():
        raise RuntimeError(f"{ENV_DIR} is {env!r}, not {str(directory)!r}: the metrics would be written "
                           "to one directory and read from another")


def mark_process_dead(pid: int, directory: str | os.PathLike | None = None) -> None:
    """Drop the live gauges (nasfer_model_info) of the exited process `pid` from `directory` (default:
    PROMETHEUS_MULTIPROC_DIR; nothing to do without it). Its counters and histograms stay counted."""
    path = directory or os.environ.get(ENV_DIR)
    if not path:
        return
    from prometheus_client import multiprocess

    multiprocess.mark_process_dead(pid, str(path))


class _WithoutCreated:
    """A collector of `metrics` without their `_created` samples, as in multiprocess mode."""

    def __init__(self, metrics: dict[str, Any]):
        self._metrics = metrics

    def collect(self):
        for metric in self._metrics.values():
            for family in metric.collect():
                family.samples = [s for s in family.samples if not s.name.endswith("_created")]
                yield family


class Metrics:
    """The service's metrics (`DEFINITIONS`): shared by the worker processes through `directory`
    (PROMETHEUS_MULTIPROC_DIR) when given, else this object's own."""

    def __init__(self, directory: str | os.PathLike | None = None):
        from prometheus_client import CollectorRegistry

        global _shared
        self.directory = Path(directory) if directory else None
        self.write_errors = 0
        self._registry = CollectorRegistry()
        if self.directory is None:
            self._metrics = _build(registry=None)
            self._registry.register(_WithoutCreated(self._metrics))
        else:
            from prometheus_client.multiprocess import MultiProcessCollector

            require_multiprocess(self.directory)
            with _shared_lock:
                if _shared is None:  # one set per process: two sets would overwrite each other's values
                    _shared = _build(registry=None)
            self._metrics = _shared
            MultiProcessCollector(self._registry, path=str(self.directory))

    @classmethod
    def from_environment(cls) -> "Metrics":
        return cls(os.environ.get(ENV_DIR) or None)

    # -- recording ---------------------------------------------------------------------------
    def inc(self, name: str, labels: dict[str, object] | None = None, value: float = 1.0) -> None:
        self._record(name, "counter", labels, lambda m: m.inc(value))

    def observe(self, name: str, value: float, labels: dict[str, object] | None = None) -> None:
        self._record(name, "histogram", labels, lambda m: m.observe(value))

    def set(self, name: str, value: float, labels: dict[str, object] | None = None) -> None:
        self._record(name, "gauge", labels, lambda m: m.set(value))

    def _record(self, name: str, kind: str, labels: dict[str, object] | None, update: Callable[[Any], None]) -> None:
        definition = DEFINITIONS.get(name)
        if definition is None or definition[0] != kind:
            raise KeyError(f"{name!r} is not a defined {kind}")
        metric = self._metrics[name]
        try:
            update(metric.labels(**labels) if labels else metric)
        except OSError as exc:  # the shared directory is gone: the request is still answered
            self.write_errors += 1
            if self.write_errors % 60 == 1:
                log.warning("cannot write metrics to %s (%d failure(s) so far): %s",
                            self.directory, self.write_errors, exc)

    def close(self) -> None:
        """Nothing to flush: every update is written when it is made."""

    # -- exposition ---------------------------------------------------------------------------
    def render(self) -> str:
        """All metrics in Prometheus text format 0.0.4: of every worker (multiprocess mode) or of this object."""
        from prometheus_client import generate_latest

        return generate_latest(self._registry).decode("utf-8")
