"""SIGTERM handled like Ctrl-C by long commands that save their state when interrupted.

`kill PID`, `timeout`, systemd, Kubernetes and batch schedulers stop a process with SIGTERM, which by
default ends Python at once, without `finally` blocks: a search interrupted that way lost the time of
its unfinished child. Inside `sigterm_as_sigint()`, SIGTERM raises KeyboardInterrupt (`Terminated`) instead,
so the command's Ctrl-C handling (save the state, keep partial results, say how to continue) runs for both.
"""

from __future__ import annotations

import signal
from contextlib import contextmanager
from typing import Iterator


class Terminated(KeyboardInterrupt):
    """SIGTERM, raised where Ctrl-C's KeyboardInterrupt would be (the CLI exits 143 for it, 128 + SIGTERM)."""


def _on_sigterm(signum, frame) -> None:
    handler = signal.getsignal(signal.SIGINT)
    if callable(handler) and handler is not signal.default_int_handler:
        signal.raise_signal(signal.SIGINT)  # a library's own Ctrl-C handling (Ray Tune's graceful stop)
    else:  # Python's KeyboardInterrupt, or SIGINT ignored (a job started with `&` by a script): raise it here
        raise Terminated()


@contextmanager
def sigterm_as_sigint() -> Iterator[None]:
    """Within the block, SIGTERM is handled as Ctrl-C: it raises `Terminated` (a KeyboardInterrupt) in the main
    thread, or runs the SIGINT handler a library installed (Ray Tune stops gracefully); the previous handler
    is restored after it. Off the main thread (where handlers cannot be set) it changes nothing."""
    try:
        previous = signal.signal(signal.SIGTERM, _on_sigterm)
    except ValueError:  # not the main thread
        yield
        return
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


__all__ = ["Terminated", "sigterm_as_sigint"]
