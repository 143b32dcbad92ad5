"""Serve the emotion API and the mobile web client over HTTP.

Runs gunicorn (one model copy per worker process) with nasfer's waitress-based worker class: each
worker reads and buffers whole requests in an I/O loop before its threads run the app, so slow
clients cannot starve it. --dev runs Flask's development server instead (one process; for trying
things out, never for production).

Examples:
  nasfer serve                                   # http://127.0.0.1:8000, one worker per core
  nasfer serve --host 0.0.0.0 --port 8080 --workers 2 --threads 2
  nasfer serve --model runs/nas/model.onnx --detector yunet --detector-model face_detection_yunet.onnx
  nasfer serve --dev --log-level debug
Then open http://127.0.0.1:8000/ (web client) or /docs (API).
"""

from __future__ import annotations

import argparse
import errno
import os
import shutil
import sys
import tempfile
from pathlib import Path
from typing import Any, Callable

from .. import config
from ..service import metrics as service_metrics
from ..service.config import ServeConfig, bind_address

NAME = "serve"
HELP = "run the HTTP API and web client (gunicorn + waitress workers; --dev for Flask's server)"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    config.add_arguments(parser, ServeConfig)


def gunicorn_options(cfg: ServeConfig) -> dict[str, Any]:
    """The gunicorn settings for `cfg` (documented in docs/deploy.md)."""
    options: dict[str, Any] = {
        "bind": [bind_address(cfg.host, cfg.port)],
        "workers": cfg.worker_count,
        "threads": cfg.threads,
        # Requests are read whole by waitress's I/O loop in each worker (nasfer.service.worker).
        "worker_class": WORKER_CLASS,
        # Heartbeat limit: a worker whose I/O loop stops turning this long is restarted.
        "timeout": cfg.timeout,
        "graceful_timeout": max(5, min(cfg.timeout, 30)),
        "loglevel": cfg.log_level,
        "errorlog": "-",
        "accesslog": None,  # the app logs each request itself, with its request id
        "proc_name": "nasfer",
        # gunicorn >= 25 opens a control socket under ~/.gunicorn by default; several servers on
        # one host would share it, and a read-only home breaks it. Not needed: disable.
        "control_socket_disable": True,
        "child_exit": worker_exited,
    }
    if Path("/dev/shm").is_dir() and os.access("/dev/shm", os.W_OK):
        options["worker_tmp_dir"] = "/dev/shm"  # heartbeat files off a possibly slow container disk
    return options


WORKER_CLASS = "nasfer.service.worker.WaitressWorker"


def worker_exited(server: Any, worker: Any) -> None:
    """gunicorn's `child_exit` hook (in the master): the exited worker's model no longer counts in
    /metrics' nasfer_model_info; its counters stay in the sums."""
    try:
        service_metrics.mark_process_dead(worker.pid)
    except OSError as exc:  # never let the bookkeeping stop the master
        print(f"nasfer serve: cannot drop the metrics of worker {worker.pid}: {exc}", file=sys.stderr, flush=True)


def limit_native_threads(n: int = 1) -> None:
    """Pin OpenCV's own thread pool: with one worker process per core, more threads only contend."""
    try:
        import cv2

        cv2.setNumThreads(n)
    except Exception:  # pragma: no cover - OpenCV missing or without a thread pool
        pass


def make_server(app_factory: Callable[[], Any], options: dict[str, Any], cfg: ServeConfig | None = None):
    """A gunicorn application that calls `app_factory()` in each worker after it forks; its
    `serve_config` is what the worker class reads (limits, timeouts)."""
    from gunicorn.app.base import BaseApplication

    class NasferGunicorn(BaseApplication):
        def __init__(self) -> None:
            self.options = options
            self.serve_config = cfg or ServeConfig()
            super().__init__()

        def load_config(self) -> None:
            for key, value in self.options.items():
                if key in self.cfg.settings:  # settings newer than the installed gunicorn are skipped
                    self.cfg.set(key, value)

        def load(self):
            return app_factory()

    return NasferGunicorn()


def check_files(cfg: ServeConfig) -> None:
    """Fail before forking workers when a named file is missing or the detector cannot be built (clear
    message, exit 2; before, each worker failed with a traceback): ValueError for an unknown --detector,
    FileNotFoundError for a missing --model or --detector-model, ModelError for YuNet without its model (no --detector-model,
    none cached); the messages are `create_detector`'s (`nasfer.runtime.faces.check_detector`)."""
    from ..runtime.faces import check_detector

    for flag, value in (("--model", cfg.model), ("--detector-model", cfg.detector_model)):
        if value and not Path(value).is_file():
            raise FileNotFoundError(f"{flag} {value}: no such file")
    try:
        check_detector(cfg.detector, cfg.detector_model)
    except ValueError as exc:
        raise ValueError(f"--detector: {exc}") from None


def serve(cfg: ServeConfig, app_factory: Callable[[], Any] | None = None) -> int:
    """Run gunicorn for `cfg` until it is stopped (SIGTERM/SIGINT: graceful); returns its exit status.

    `app_factory` (default: `create_app(cfg)`) runs in every worker after the fork, so each worker
    loads its own model and nothing heavy happens in the master process.
    """
    master_pid = os.getpid()
    # prometheus_client's multiprocess mode (nasfer.service.metrics): set before it is imported, inherited
    # by the workers, which write their metrics to files there; /metrics sums them all.
    metrics_dir = tempfile.mkdtemp(prefix="nasfer-metrics-")
    previous = os.environ.get(service_metrics.ENV_DIR)
    os.environ[service_metrics.ENV_DIR] = metrics_dir
    multi_worker = cfg.worker_count > 1

    def worker_app():
        if multi_worker:
            limit_native_threads(1)
        if app_factory is not None:
            return app_factory()
        from ..service.app import create_app

        return create_app(cfg)

    print(f"nasfer serve: http://{bind_address(cfg.host, cfg.port)}/ with {cfg.worker_count} worker(s) x "
          f"{cfg.threads} thread(s)", file=sys.stderr, flush=True)
    try:
        service_metrics.require_multiprocess(metrics_dir)
        make_server(worker_app, gunicorn_options(cfg), cfg).run()
    except SystemExit as exc:  # gunicorn leaves through sys.exit; keep its status
        return exc.code if isinstance(exc.code, int) else (0 if exc.code is None else 1)
    finally:
        # Workers leave gunicorn through this frame too (they are forked inside run()); only the
        # master cleans up.
        if os.getpid() == master_pid:
            shutil.rmtree(metrics_dir, ignore_errors=True)
        if previous is None:
            os.environ.pop(service_metrics.ENV_DIR, None)
        else:
            os.environ[service_metrics.ENV_DIR] = previous
    return 0


def check_port(cfg: ServeConfig) -> None:
    """ValueError when --host/--port cannot be listened on (another server has the port, no permission, an
    address this machine does not have), before the workers start: gunicorn would retry for seconds and end
    with "Can't connect". Port 0 (any free port) is not checked."""
    import socket

    if cfg.port == 0:
        return
    host = cfg.host.strip("[]")
    family = socket.AF_INET6 if ":" in host else socket.AF_INET  # as gunicorn chooses (and binds the name itself)
    with socket.socket(family, socket.SOCK_STREAM) as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as gunicorn binds: TIME_WAIT is no conflict
        try:
            probe.bind((host, cfg.port))
        except socket.gaierror as exc:
            raise ValueError(f"--host {cfg.host}: not an address of this machine ({exc.strerror})") from None
        except OSError as exc:
            hint = "; another server is listening there: stop it or choose another --port" \
                if exc.errno == errno.EADDRINUSE else ""
            raise ValueError(f"cannot listen on {bind_address(cfg.host, cfg.port)}: {exc.strerror}{hint}") from None


def run(args: argparse.Namespace) -> int:
    cfg = config.from_args(ServeConfig, args).validate()
    check_files(cfg)
    check_port(cfg)
    if cfg.dev:
        from ..service.app import create_app

        app = create_app(cfg)
        print(f"nasfer serve: development server on http://{bind_address(cfg.host, cfg.port)}/ "
              f"(not for production: use it without --dev)", file=sys.stderr, flush=True)
        app.run(host=cfg.host, port=cfg.port, debug=False, use_reloader=False, threaded=True)
        return 0
    return serve(cfg)
