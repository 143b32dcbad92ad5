"""Shared by the benchmark scripts (run as `python benchmarks/<name>.py`, so this is importable as `common`)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any


def write_result(result: dict[str, Any], out: str | Path) -> Path:
    """Write a benchmark's JSON (parents created) and say where."""
    path = Path(out)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(result, indent=2))
    print(f"wrote {path}")
    return path
