"""One pool of recognizers per detector name, created on first use and reused for every request.

A recognizer holds a face detector whose OpenCV objects keep per-call state, so one instance is
used by one request at a time: each pool lends instances out and creates up to `size` of them
(the worker's thread count), so threads never wait for each other's detector.
"""

from __future__ import annotations

import threading
from contextlib import contextmanager
from typing import Any, Callable, Iterator, Protocol, Sequence


class Recognizer(Protocol):
    """What the service needs from `nasfer.runtime.api.EmotionRecognizer`."""

    labels: Sequence[str]
    card: dict

    def detect(self, image: Any, color: str = "rgb") -> list: ...


class PoolBusy(Exception):
    """No recognizer became free within the wait limit."""


class RecognizerUnavailable(Exception):
    """Building a recognizer for a detector failed (the cause is chained)."""

    def __init__(self, detector: str, cause: BaseException):
        super().__init__(f"the {detector!r} detector could not be loaded: {cause}")
        self.detector = detector


class _Pool:
    def __init__(self, factory: Callable[[], Recognizer], size: int):
        self.factory = factory
        self.size = size
        self.free: list[Recognizer] = []
        self.created = 0
        self.first: Recognizer | None = None  # for read-only attributes (.card, .labels)
        self.cond = threading.Condition()


class RecognizerPools:
    """`detector name -> pool`; `factory(detector)` builds one recognizer for that detector."""

    def __init__(self, factory: Callable[[str], Recognizer], detectors: Sequence[str], size: int,
                 wait_s: float = 30.0):
        self.detectors = tuple(dict.fromkeys(detectors))
        self.size = max(1, size)
        self.wait_s = wait_s
        self._factory = factory
        self._pools: dict[str, _Pool] = {}
        self._lock = threading.Lock()

    def _pool(self, detector: str) -> _Pool:
        if detector not in self.detectors:
            raise KeyError(detector)
        with self._lock:
            pool = self._pools.get(detector)
            if pool is None:
                pool = self._pools[detector] = _Pool(lambda: self._factory(detector), self.size)
            return pool

    def add(self, detector: str, recognizer: Recognizer, exclusive: bool = True) -> None:
        """Put a ready-made recognizer in `detector`'s pool (`exclusive`: the pool holds only it)."""
        pool = self._pool(detector)
        with pool.cond:
            pool.free.append(recognizer)
            pool.created += 1
            if pool.first is None:
                pool.first = recognizer
            if exclusive:
                pool.size = pool.created
            pool.cond.notify()

    def warm(self, detector: str) -> Recognizer:
        """Make sure `detector` has at least one recognizer (raises what its creation raises)."""
        try:
            with self.lease(detector) as recognizer:
                return recognizer
        except RecognizerUnavailable as exc:
            raise exc.__cause__ from None  # type: ignore[misc]

    def loaded(self) -> list[str]:
        with self._lock:
            return [name for name, pool in self._pools.items() if pool.created > 0]

    def any(self, detector: str) -> Recognizer | None:
        """Some recognizer of `detector` (free or lent), for read-only attributes such as `.card`."""
        with self._lock:
            pool = self._pools.get(detector)
        if pool is None:
            return None
        return pool.first

    @contextmanager
    def lease(self, detector: str) -> Iterator[Recognizer]:
        """Borrow a recognizer of `detector` for one request (KeyError: unknown detector)."""
        pool = self._pool(detector)
        recognizer = None
        with pool.cond:
            while recognizer is None:
                if pool.free:
                    recognizer = pool.free.pop()
                elif pool.created < pool.size:
                    pool.created += 1  # reserve the slot; build outside the lock
                    break
                elif not pool.cond.wait(self.wait_s):
                    raise PoolBusy(f"no free {detector!r} recognizer within {self.wait_s:g} s")
        if recognizer is None:
            try:
                recognizer = pool.factory()
            except BaseException as exc:
                with pool.cond:
                    pool.created -= 1
                    pool.cond.notify()
                if isinstance(exc, Exception):
                    raise RecognizerUnavailable(detector, exc) from exc
                raise
            with pool.cond:
                if pool.first is None:
                    pool.first = recognizer
        try:
            yield recognizer
        finally:
            with pool.cond:
                pool.free.append(recognizer)
                pool.cond.notify()
