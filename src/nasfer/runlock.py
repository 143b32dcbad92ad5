"""One writer per run directory: an exclusive advisory lock (`fcntl.flock`) on DIR/.lock.

A second `nasfer search` (or `nasfer train`, or retraining campaign) on the same output folder would
interleave its state, log and checkpoints with the first one's. Holding the lock for the whole run makes
the second one stop at once with a clear error. The kernel drops the lock when its process ends, even
after `kill -9`, so a lock file left behind never blocks a resume. Where `fcntl` does not exist
(Windows) runs are not locked.

A command refused after it took the lock (`clean_up=True`: a bad dataset found while reading it) leaves the
file system as it found it: the lock file it made is removed, and so are the folders it made, when nothing
else was written in them. A folder that was there before (a run being resumed) is never removed.
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
def run_lock(folder: str | os.PathLike, what: str = "run", *, clean_up: bool = False) -> Iterator[None]:
    """Hold the lock of `folder` (created if missing) for the `with` block; RunLocked at once if another
    process holds it (its pid and `what`, written in the lock file, are in the message).

    `clean_up`: when the block raises, remove the lock file if this call made it, then the folders this call
    made (`folder` and any missing parents) that are left empty; never a folder that existed before, nor
    anything in it but the lock file. The lock is released either way.
    """
    try:
        import fcntl
    except ImportError:  # pragma: no cover - not POSIX
        yield
        return
    folder = Path(folder)
    made = [p for p in (folder, *folder.parents) if not p.exists()]  # deepest first
    folder.mkdir(parents=True, exist_ok=True)
    lock = folder / LOCK_FILE
    made_lock = not lock.exists()
    with open(lock, "a+") as handle:
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
        except BaseException:
            if clean_up and made_lock:
                lock.unlink(missing_ok=True)  # still held: no other writer can have taken it in between
            if clean_up:
                _remove_empty(made)
            raise
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def _remove_empty(folders: list[Path]) -> None:
    """Remove each folder (deepest first) while it is empty; stop at the first that is not (or is gone)."""
    for path in folders:
        try:
            path.rmdir()
        except OSError:
            return


__all__ = ["LOCK_FILE", "RunLocked", "run_lock"]
