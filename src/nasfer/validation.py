"""Range checks shared by the command configs' `validate()` methods (bad input: one clear line, no traceback).

Each `validate()` lists `(ok, message)` pairs, the message naming the flag, and hands them to `check`, which
raises ValueError with the first failing message; the CLI prints it as `nasfer CMD: error: MESSAGE`.
Write each condition as what a good value satisfies, so NaN (which fails every comparison) is refused too.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Iterable

#: Most threads (or worker processes) a flag may ask for: far beyond any machine nasfer runs on, but small
#: enough that a typo (--threads 100000) fails at once instead of hanging while the threads are created.
MAX_THREADS = 1024


def check(checks: Iterable[tuple[bool, str]]) -> None:
    """Raise ValueError with the message of the first `(ok, message)` pair whose `ok` is false."""
    for ok, message in checks:
        if not ok:
            raise ValueError(message)


def threads_check(value: int, flag: str = "--threads", zero: str = "all cores") -> tuple[bool, str]:
    """The `(ok, message)` pair of a thread-count flag: 0..MAX_THREADS, 0 meaning `zero`."""
    return 0 <= value <= MAX_THREADS, f"{flag} must be 0..{MAX_THREADS} (0: {zero}), got {value}"


def finite(value: float) -> bool:
    """True for a real number (not NaN, not +-infinity)."""
    return math.isfinite(value)


def check_only_with(given: list[str], condition: str) -> None:
    """ValueError "--a, --b only apply with CONDITION" ("--a only applies ...") when flags that mean something
    only with another setting were `given` without it (e.g. `nasfer.config.changed_flags`)."""
    if given:
        raise ValueError(f"{', '.join(given)} {'only applies' if len(given) == 1 else 'only apply'} with {condition}")


def file_above(path: Path) -> Path | None:
    """The file standing where one of the folders above `path` must be (so `path` cannot be made), or None."""
    above = next((p for p in path.parents if p.exists()), None)
    return above if above is not None and not above.is_dir() else None


def check_output_folder(out: str, what: str, flag: str = "--out") -> None:
    """ValueError when the folder `out` cannot be made because it, or a folder above it, is a file; `what` names
    the folder in the message ("the run directory", "the search directory")."""
    path = Path(out).expanduser()
    if path.exists() and not path.is_dir():
        raise ValueError(f"{flag} {out}: a file is there; {what} must be a folder")
    if (above := file_above(path)) is not None:
        raise ValueError(f"{flag} {out}: {above} is a file; {what} must be a folder")


def is_training_run_config(path: Path) -> bool:
    """Whether the JSON file `path` is a training run's config.json (it has a "train" section); False for a
    search's config, another file, or one that cannot be read."""
    import json

    try:
        data = json.loads(Path(path).read_text())
    except (OSError, ValueError):
        return False
    return isinstance(data, dict) and "train" in data


def check_new_run_folder(out: str, what: str, allowed: Iterable[str], flag: str = "--out") -> None:
    """ValueError when the folder `out` exists and holds entries a new run of this kind would not find there: any
    name outside `allowed` (what the run itself, or the tool starting it, puts there before its first checkpoint),
    hidden names aside. Call it only for a new run (no checkpoint of its own yet), so that a user's folder, or a
    run of another kind (a search's folder given to `nasfer train`), is never written into (before: a training
    replaced the config.json and best.pt it found)."""
    path = Path(out).expanduser()
    if not path.is_dir():
        return
    allowed = set(allowed)
    foreign = sorted(p.name for p in path.iterdir() if p.name not in allowed and not p.name.startswith("."))
    if foreign:
        shown = ", ".join(foreign[:3]) + (f" and {len(foreign) - 3} more" if len(foreign) > 3 else "")
        raise ValueError(f"{flag} {out}: the folder holds {shown}, which {what} does not write; give a new or empty "
                         "folder (nothing was done)")


def check_out_outside_data(out: str, data: str | None, what: str, flag: str = "--out") -> None:
    """ValueError when the folder `out` is a dataset folder `data` or lies inside it: the run's own files
    (curves.png, confusion.png) would be read as images of a class named after its folder by the next run on
    that dataset, and would change the dataset this run resumes on (before: written there without a word)."""
    if not out or not data:
        return
    data_path = Path(data).expanduser().resolve()
    out_path = Path(out).expanduser().resolve()
    if data_path.is_dir() and (out_path == data_path or data_path in out_path.parents):
        raise ValueError(f"{flag} {out} is inside the dataset folder {data}: {what}'s files (curves.png, ...) would "
                         "be read as images of a class of their own the next time the dataset is read; give a "
                         "folder outside it (nothing was done)")


__all__ = ["MAX_THREADS", "check", "check_new_run_folder", "check_out_outside_data", "is_training_run_config", "check_only_with", "check_output_folder", "file_above",
           "finite", "threads_check"]
