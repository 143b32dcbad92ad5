"""Shared by the benchmark scripts (run as `python benchmarks/<name>.py`, so this is importable as `common`)."""

from __future__ import annotations

import json
import platform
import statistics
import time
from pathlib import Path
from typing import Any, Callable

import numpy as np


def write_result(result: dict[str, Any], out: str | Path) -> Path:
    """Write a benchmark's JSON (parents created) and say where."""
    path = Path(out)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(result, indent=2))
    print(f"wrote {path}")
    return path


def cpu_model_name() -> str | None:
    """The CPU's model name, /proc/cpuinfo's first "model name" line; None where there is none (not Linux,
    or an architecture whose cpuinfo lacks the field)."""
    try:
        return next(line.split(":", 1)[1].strip() for line in Path("/proc/cpuinfo").read_text().splitlines()
                    if line.startswith("model name"))
    except (OSError, StopIteration):
        return None


def cpu_model() -> str:
    """The CPU's model name (cpu_model_name; else what `platform` knows): speed files record it so that
    timings from different machines are never compared."""
    return cpu_model_name() or platform.processor() or platform.machine()


#: /proc/cpuinfo flags that decide int8 and bf16 speed on x86: AVX2, AVX-512, VNNI (int8 dot products, what
#: ONNX Runtime's int8 convolutions use where present), AVX-512 BF16 and AMX.
SPEED_CPU_FLAGS = ("avx2", "avx512f", "avx512_vnni", "avx_vnni", "avx512_bf16", "amx_int8", "amx_bf16")


def cpu_speed_flags(cpuinfo: str | None = None) -> list[str]:
    """The SPEED_CPU_FLAGS this CPU has, sorted ([] where /proc/cpuinfo is missing): speed files record them, since
    two machines of one model name may differ (a VM may hide AVX-512)."""
    from nasfer.training.precision import cpu_flags

    return sorted(cpu_flags(cpuinfo) & set(SPEED_CPU_FLAGS))


def cpu_identity(cpuinfo: str | None = None) -> str:
    """The CPU's model name with its SPEED_CPU_FLAGS, e.g. "AMD EPYC (avx2 avx512_bf16 avx512_vnni avx512f)":
    what decides whether two timings may be compared, since one model name covers VMs with and without
    AVX-512 VNNI (int8 runs about 2x faster with it, README "On a CPU without VNNI")."""
    flags = cpu_speed_flags(cpuinfo)
    return f"{cpu_model()} ({' '.join(flags)})" if flags else cpu_model()


def timeit(fn: Callable[[], Any], seconds: float, min_runs: int = 5) -> dict[str, float]:
    """Median / min seconds per call of `fn` after two warm-up calls, over at least `seconds`.

    `cpu_per_wall` is this process's CPU seconds (all its threads) per wall second over the timed calls:
    above 1, more than one thread was busy; below 1, the process waited (for the CPU, on a loaded machine).
    """
    fn()
    fn()
    times: list[float] = []
    start, cpu = time.perf_counter(), time.process_time()
    while len(times) < min_runs or time.perf_counter() - start < seconds:
        t = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t)
    wall = time.perf_counter() - start
    return {"median_s": statistics.median(times), "min_s": min(times), "runs": len(times),
            "cpu_per_wall": (time.process_time() - cpu) / wall if wall > 0 else float("nan")}


def import_fer():
    """The `fer` package's FER class (fer 25.x no longer re-exports it from the package).

    Raises ImportError where `fer` (a benchmark-only peer, never a nasfer dependency) is not installed.
    """
    try:
        from fer import FER
    except ImportError:
        from fer.fer import FER
    return FER


def face_grid(face: np.ndarray, rows: int, cols: int, pad: int) -> tuple[np.ndarray, list[tuple[int, int, int, int]]]:
    """One image holding `rows` x `cols` copies of `face` (H, W, 3 uint8 BGR), each with a `pad`-pixel replicated
    border (room for `fer`'s `offsets`, which grow each box before cropping), and the faces' (x, y, w, h)
    rectangles: the input of `fer`'s `detect_emotions(img, face_rectangles=...)`, which then crops, resizes
    and classifies the given faces one by one (no detector runs)."""
    import cv2

    cell = cv2.copyMakeBorder(face, pad, pad, pad, pad, cv2.BORDER_REPLICATE) if pad else face
    ch, cw = cell.shape[:2]
    rects = [(c * cw + pad, r * ch + pad, face.shape[1], face.shape[0]) for r in range(rows) for c in range(cols)]
    return np.ascontiguousarray(np.tile(cell, (rows, cols, 1))), rects
