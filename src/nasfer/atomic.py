"""Files that readers never see half-written: write a temporary file beside the target, then rename it.

Used for the JSON files other processes read while a run goes on (a run's history.json, a search's
summary.json, model cards, the NAS latency cache), e.g. benchmarks/retrain.py deciding whether a step is
finished. Each write has its own temporary name, so writers of one file at the same time never publish
each other's half-written file (the last rename wins).
"""

from __future__ import annotations

import contextlib
import os
import uuid
from pathlib import Path


def write_text_atomic(path: str | os.PathLike, text: str, encoding: str = "utf-8") -> None:
    """Replace `path` with `text` in one step (os.replace): a kill leaves the old file or the new one, never a
    cut-off one. OSError as Path.write_text raises it; the temporary file is removed on failure.

    The temporary file, `<name>.<pid>-<random>.tmp` in the same folder, is this call's own: another
    writer of `path` at the same time uses another one.
    """
    path = Path(path)
    tmp = path.with_name(f"{path.name}.{os.getpid()}-{uuid.uuid4().hex[:12]}.tmp")
    try:
        with open(tmp, "x", encoding=encoding) as handle:  # "x": never someone else's file
            handle.write(text)
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):  # the error to report is the write's
            tmp.unlink(missing_ok=True)
        raise


__all__ = ["write_text_atomic"]
