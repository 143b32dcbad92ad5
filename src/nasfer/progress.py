"""Progress for long commands: a tqdm bar on a terminal, a few plain lines in a log, nothing when asked.

A bar redraws itself with carriage returns; written to a file or a pipe (a background run's log, CI)
that turns into thousands of frames. `progress_bar` decides by `sys.stderr.isatty()` (or `enabled`):

    for frame in progress_bar(frames, total=n, desc="video", unit="frame"):
        ...
    with progress_bar(total=len(files), desc="predict", unit="img") as bar:
        bar.update(1); bar.write("a result line")   # printed above a bar, never through it

Off a terminal it prints one line every `every` items (default: a tenth of `total`, else 100) and one
at the end: `video: 250/1000 frames (41.7 frames/s)`.
"""

from __future__ import annotations

import sys
import time
from typing import Any, Iterable, Iterator, Optional, TextIO


def progress_bar(iterable: Optional[Iterable] = None, *, total: Optional[int] = None, desc: str = "",
                 unit: str = "it", enabled: Optional[bool] = None, show: bool = True, every: Optional[int] = None,
                 file: Optional[TextIO] = None) -> "Progress":
    """A progress object over `iterable` (or driven by `.update(n)`).

    enabled: True = a tqdm bar, False = plain lines; None (default) = a bar when `file` (default
    sys.stderr) is a terminal, lines otherwise. show=False prints nothing at all. every: items per
    line in line mode. The object iterates, updates, `.write(text)`s above the bar and closes
    (also as a context manager).
    """
    stream = file if file is not None else sys.stderr
    if not show:
        return Progress(iterable, total, desc, unit, stream, mode="off", every=every)
    if enabled is None:
        enabled = bool(getattr(stream, "isatty", lambda: False)())
    return Progress(iterable, total, desc, unit, stream, mode="bar" if enabled else "lines", every=every)


class Progress:
    """What `progress_bar` returns: a tqdm bar, a line logger or a silent counter behind one interface."""

    def __init__(self, iterable: Optional[Iterable], total: Optional[int], desc: str, unit: str, file: TextIO,
                 mode: str, every: Optional[int] = None):
        if total is None and iterable is not None and hasattr(iterable, "__len__"):
            total = len(iterable)  # type: ignore[arg-type]
        self.iterable, self.total, self.desc, self.unit, self.file, self.mode = iterable, total, desc, unit, file, mode
        self.n = 0
        self.every = max(1, int(every)) if every else (max(1, -(-total // 10)) if total else 100)
        self._next_line = self.every
        self._start = time.perf_counter()
        self._closed = False
        self._bar: Any = None
        if mode == "bar":
            from tqdm import tqdm

            self._bar = tqdm(total=total, desc=desc or None, unit=unit, file=file, leave=False, dynamic_ncols=True)

    def __iter__(self) -> Iterator:
        if self.iterable is None:
            raise TypeError("this progress object has no iterable; call update() instead")
        try:
            for item in self.iterable:
                yield item
                self.update(1)
        finally:
            self.close()

    def __enter__(self) -> "Progress":
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()

    def update(self, n: int = 1) -> None:
        self.n += n
        if self._bar is not None:
            self._bar.update(n)
        elif self.mode == "lines" and self.n >= self._next_line:
            self._line()
            while self._next_line <= self.n:
                self._next_line += self.every

    def write(self, text: str, file: Optional[TextIO] = None) -> None:
        """Print a line (to stdout by default) without breaking the bar."""
        out = file if file is not None else sys.stdout
        if self._bar is not None:
            from tqdm import tqdm

            tqdm.write(text, file=out)
        else:
            print(text, file=out, flush=True)

    def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        if self._bar is not None:
            self._bar.close()
        elif self.mode == "lines" and self.n and self.n != self._last_logged:
            self._line()

    _last_logged = 0

    def _line(self) -> None:
        elapsed = time.perf_counter() - self._start
        rate = f" ({self.n / elapsed:.1f} {self.unit}/s)" if elapsed > 0 else ""
        of = f"/{self.total}" if self.total else ""
        prefix = f"{self.desc}: " if self.desc else ""
        print(f"{prefix}{self.n}{of} {self.unit}{rate}", file=self.file, flush=True)
        self._last_logged = self.n


__all__ = ["progress_bar", "Progress"]
