"""Connect to Ray for the `--backend ray` commands, lazily: nothing here imports Ray at import time.

Ray is an optional dependency (`pip install 'nasfer[distributed]'`); `require_ray()` turns its absence
into a NasferError that says how to install it, so the CLI prints one line instead of a traceback.
"""

from __future__ import annotations

import logging
from contextlib import contextmanager
from typing import Any, Iterator

from .errors import NasferError

INSTALL_HINT = "pip install 'nasfer[distributed]'"


def require_ray() -> Any:
    """The `ray` module; NasferError with the install command where Ray is not installed."""
    try:
        import ray
    except ImportError:
        raise NasferError(f"--backend ray needs Ray, which is not installed: {INSTALL_HINT}") from None
    return ray


@contextmanager
def ray_session(address: str | None = None, num_cpus: int = 0) -> Iterator[Any]:
    """Use the Ray already initialised in this process, or connect/start one for the block's duration.

    address: a cluster (`ray://host:10001`, `host:6379`, or `auto` for the cluster this machine belongs
    to); None starts a local Ray with `num_cpus` CPUs (0: all of this machine's). A Ray this function
    started is shut down when the block ends; one initialised before is left running.
    """
    ray = require_ray()
    started = False
    if not ray.is_initialized():
        kwargs: dict[str, Any] = {"include_dashboard": False, "logging_level": logging.WARNING,
                                  "configure_logging": False}
        if address:
            kwargs["address"] = address
        elif num_cpus:
            kwargs["num_cpus"] = int(num_cpus)
        try:
            ray.init(**kwargs)
        except ConnectionError as exc:
            raise NasferError(f"cannot connect to the Ray cluster at {address}: {exc}") from None
        started = True
    try:
        yield ray
    finally:
        if started:
            ray.shutdown()


__all__ = ["INSTALL_HINT", "ray_session", "require_ray"]
