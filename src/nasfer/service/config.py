"""`ServeConfig`: every `nasfer serve` flag is one field here (see `nasfer.config`)."""

from __future__ import annotations

import math
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from ..config import option
from ..runtime.options import RecognizerOptions, check_max_faces_flag

LogLevel = Literal["debug", "info", "warning", "error"]


def cpu_count() -> int:
    """CPU cores this process may use: its CPU affinity, capped by a container's CPU quota
    (cgroup v2 `cpu.max` or v1 `cpu.cfs_quota_us`), which affinity alone does not show."""
    try:
        cores = len(os.sched_getaffinity(0))
    except (AttributeError, OSError):  # pragma: no cover - non-Linux
        cores = os.cpu_count() or 1
    quota = _cgroup_cpu_quota()
    if quota is not None:
        cores = min(cores, max(1, math.ceil(quota)))
    return max(1, cores)


def _cgroup_cpu_quota(root: str = "/sys/fs/cgroup") -> float | None:
    """CPUs granted by the cgroup CPU quota, or None when unlimited / unknown."""
    try:
        quota, period = Path(root, "cpu.max").read_text().split()[:2]  # v2: "max 100000" or "200000 100000"
        return None if quota == "max" else int(quota) / int(period)
    except (OSError, ValueError):
        pass
    try:
        quota_us = int(Path(root, "cpu", "cpu.cfs_quota_us").read_text())
        period_us = int(Path(root, "cpu", "cpu.cfs_period_us").read_text())
        return None if quota_us <= 0 or period_us <= 0 else quota_us / period_us
    except (OSError, ValueError):
        return None


def bind_address(host: str, port: int) -> str:
    """`host:port`, with an IPv6 host in brackets."""
    return f"[{host}]:{port}" if ":" in host and not host.startswith("[") else f"{host}:{port}"


#: The most faces one response may hold (`--max-faces 0` means this many; a larger setting is refused).
MAX_FACES_CAP = 100


@dataclass
class ServeConfig(RecognizerOptions):
    """How the HTTP service runs: server processes, model, detector and input limits."""

    host: str = option("127.0.0.1", "address to listen on (0.0.0.0: all interfaces, e.g. inside a container)")
    port: int = option(8000, "TCP port to listen on")
    workers: int = option(0, "gunicorn worker processes, each with its own model copy (0: one per CPU core, container quota respected)")
    threads: int = option(2, "application threads per worker; each one serves one whole request at a time "
                             "(requests are read by the worker's I/O loop, not by these threads)")
    timeout: int = option(30, "seconds a connection may stay silent (idle keep-alive or a stalled upload) before "
                              "it is closed; also the longest a request waits for a free model (then 503)")
    read_timeout: int = option(60, "seconds a client may take to send one whole request, headers and body "
                                   "(slower: HTTP 408)")
    max_faces: int = option(20, f"most faces returned per image, largest first, at most {MAX_FACES_CAP} "
                                f"(0: {MAX_FACES_CAP}); a request may ask for fewer")
    max_upload_mb: float = option(10.0, "largest accepted request body in MB (larger: HTTP 413)")
    max_pixels: int = option(25_000_000, "largest accepted image, width x height (larger: HTTP 413)")
    cors_origins: str = option("", "comma-separated origins allowed to call the API from other sites "
                                   "('*': any; empty: same origin only)")
    dev: bool = option(False, "run Flask's development server (one process, for trying things out) instead of gunicorn")
    log_level: LogLevel = option("info", "log level")

    def validate(self) -> "ServeConfig":
        """Raise ValueError naming the first impossible setting; return self."""
        from ..validation import MAX_THREADS, check, finite

        super().validate()  # --threshold, --detector
        check([
            (0 <= self.port <= 65535, f"--port must be 0..65535, got {self.port}"),
            (0 <= self.workers <= MAX_THREADS, f"--workers must be 0..{MAX_THREADS} (0: one per CPU core), "
                                               f"got {self.workers}"),
            (1 <= self.threads <= MAX_THREADS, f"--threads must be 1..{MAX_THREADS}, got {self.threads}"),
            (self.timeout >= 1, f"--timeout must be >= 1 second, got {self.timeout}"),
            (self.read_timeout >= 1, f"--read-timeout must be >= 1 second, got {self.read_timeout}"),
            (self.max_upload_mb > 0 and finite(self.max_upload_mb),
             f"--max-upload-mb must be a number > 0, got {self.max_upload_mb}"),
            (self.max_pixels > 0, f"--max-pixels must be > 0, got {self.max_pixels}"),
        ])
        # the service's range first: its 0 means the cap, not "no limit" as in check_max_faces_flag's message
        check([(0 <= self.max_faces <= MAX_FACES_CAP, f"--max-faces must be 0..{MAX_FACES_CAP} (0: {MAX_FACES_CAP}), "
                                                      f"got {self.max_faces}")])  # before: 1000 was accepted
        check_max_faces_flag(self.max_faces)  # the one face-limit rule of CLI, Python API and service
        return self

    @property
    def max_upload_bytes(self) -> int:
        return int(self.max_upload_mb * 1024 * 1024)

    @property
    def worker_count(self) -> int:
        """`workers`, with 0 resolved to the number of usable CPU cores."""
        return self.workers or cpu_count()

    @property
    def allowed_origins(self) -> tuple[str, ...]:
        return tuple(o.strip().rstrip("/") for o in self.cors_origins.split(",") if o.strip())
