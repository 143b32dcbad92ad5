"""Files that readers never see half-written: write a temporary file beside the target, then rename it.

Used for the JSON files other processes read while a run goes on (a run's history.json, a search's
summary.json, model cards), e.g. benchmarks/retrain.py deciding whether a step is finished.
"""

from __future__ import annotations

import os
from pathlib import Path


def write_text_atomic(path: str | os.PathLike, text: str, encoding: str = "utf-8") -> None:
    """Replace `path` with `text` in one step (os.replace): a kill leaves the old file or the new one, never a
    cut-off one. OSError as Path.write_text raises it; the temporary file is removed on failure."""
    path = Path(path)
    tmp = path.with_name(path.name + ".tmp")
    try:
        tmp.write_text(text, encoding=encoding)
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


__all__ = ["write_text_atomic"]
