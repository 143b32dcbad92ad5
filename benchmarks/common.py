"""Shared by the benchmark scripts (run as `python benchmarks/<name>.py`, so this is importable as `common`)."""

from __future__ import annotations

import json
import statistics
import time
from pathlib import Path
from typing import Any, Callable


def write_result(result: dict[str, Any], out: str | Path) -> Path:
    """Write a benchmark's JSON (parents created) and say where."""
    path = Path(out)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(result, indent=2))
    print(f"wrote {path}")
    return path


def timeit(fn: Callable[[], Any], seconds: float, min_runs: int = 5) -> dict[str, float]:
    """Median / min seconds per call of `fn` after two warm-up calls, over at least `seconds`."""
    fn()
    fn()
    times: list[float] = []
    start = time.perf_counter()
    while len(times) < min_runs or time.perf_counter() - start < seconds:
        t = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t)
    return {"median_s": statistics.median(times), "min_s": min(times), "runs": len(times)}
