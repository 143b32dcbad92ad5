"""SIGTERM handled like Ctrl-C by long commands that save their state when interrupted.

`kill PID`, `timeout`, systemd, Kubernetes and batch schedulers stop a process with SIGTERM, which by
default ends Python at once, without `finally` blocks: a search interrupted that way lost the time of
its unfinished child. Inside `sigterm_as_sigint()`, SIGTERM raises SIGINT instead, so the command's
KeyboardInterrupt handling (save the state, say how to continue) runs for both.
"""

from __future__ import annotations

import signal
from contextlib import contextmanager
from typing import Iterator


@contextmanager
def sigterm_as_sigint() -> Iterator[None]:
    """Within the block, SIGTERM raises SIGINT (KeyboardInterrupt in the main thread, Ray Tune's graceful stop);
    the previous handler is restored after it. Off the main thread (where handlers cannot be set) it changes
    nothing."""
    try:
        previous = signal.signal(signal.SIGTERM, lambda *_: signal.raise_signal(signal.SIGINT))
    except ValueError:  # not the main thread
        yield
        return
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


__all__ = ["sigterm_as_sigint"]
