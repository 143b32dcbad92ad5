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


#: SIGTERMs received inside the current `sigterm_as_sigint()` block, kept because Python drops an exception raised
#: while a weakref callback or __del__ runs ("Exception ignored in ..."): `raise_if_terminated()` raises it again.
_RECEIVED: list[int] = []


def _raise_terminated(signum, frame) -> None:
    _RECEIVED.append(signum)
    raise Terminated("SIGTERM")


def raise_if_terminated() -> None:
    """Raise `Terminated` if a SIGTERM came inside the current `sigterm_as_sigint()` block, even one whose own
    exception Python dropped; long loops call it between units of work (nasfer search: before each job)."""
    if _RECEIVED:
        raise Terminated("SIGTERM")


def _raise_sigint(signum, frame) -> None:
    _RECEIVED.append(signum)
    if signal.getsignal(signal.SIGINT) in (signal.SIG_IGN, signal.SIG_DFL, None):
        raise Terminated("SIGTERM")  # SIGINT ignored (a job started with `&` by a script): re-raising it would do nothing
    signal.raise_signal(signal.SIGINT)


@contextmanager
def sigterm_as_sigint(via_sigint: bool = False) -> Iterator[None]:
    """Within the block, SIGTERM is handled as Ctrl-C: it raises `Terminated` (a KeyboardInterrupt) in the main
    thread; with `via_sigint`, it raises SIGINT instead, so that a library's own Ctrl-C handler runs (Ray Tune
    stops gracefully). The previous handler is restored after the block. Off the main thread (where handlers
    cannot be set) it changes nothing."""
    try:
        previous = signal.signal(signal.SIGTERM, _raise_sigint if via_sigint else _raise_terminated)
    except ValueError:  # not the main thread
        yield
        return
    if previous not in (_raise_terminated, _raise_sigint):  # the outermost block: a nested one (a search inside a
        _RECEIVED.clear()                                   # campaign) keeps what the outer one received
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


__all__ = ["Terminated", "raise_if_terminated", "sigterm_as_sigint"]
