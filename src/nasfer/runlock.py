"""One writer per run directory: an exclusive advisory lock (`fcntl.flock`) on DIR/.lock.

A second `nasfer search` (or `nasfer train`, or retraining campaign) on the same output folder would
interleave its state, log and checkpoints with the first one's. Holding the lock for the whole run makes
the second one stop at once with a clear error. The kernel drops the lock when its process ends, even
after `kill -9`, so a lock file left behind never blocks a resume. Where `fcntl` does not exist
(Windows) runs are not locked.
"""

from __future__ import annotations

import os
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator

from .errors import NasferError

LOCK_FILE = ".lock"


class RunLocked(NasferError):
    """Another process holds the run directory's lock."""


@contextmanager
def run_lock(folder: str | os.PathLike, what: str = "run") -> Iterator[None]:
    """Hold the lock of `folder` (created if missing) for the `with` block; RunLocked at once if another
    process holds it (its pid and `what`, written in the lock file, are in the message)."""
    try:
        import fcntl
    except ImportError:  # pragma: no cover - not POSIX
        yield
        return
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    with open(folder / LOCK_FILE, "a+") as handle:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            handle.seek(0)
            pid, _, kind = handle.read().strip().partition(" ")
            raise RunLocked(f"{folder}: another {kind or 'process'} is writing here (pid {pid or 'unknown'}); wait "
                            "for it to end or stop it, then run the command again to continue") from None
        handle.seek(0)
        handle.truncate()
        handle.write(f"{os.getpid()} {what}\n")
        handle.flush()
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


__all__ = ["LOCK_FILE", "RunLocked", "run_lock"]
