"""Refuse, before any work, a set of output files that would destroy a file.

`nasfer predict` and `nasfer video` write several files (a CSV, its JSON summary, annotated copies, a
video, a plot). `check_outputs` is their one rule: no output may be an input, no two outputs may be
the same file, and each must be a file that can be made (no folder there, no file where a folder must be). "The same file" is decided as `os.path.samefile` does (device and inode of the file a
path names, so symlinks and hard links count) when the file exists, else by the resolved absolute path
(`pathlib.Path.resolve`, which follows the symlinks that exist on the way).
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Iterable, Union

PathLike = Union[str, "os.PathLike[str]"]


def file_key(path: PathLike) -> tuple:
    """Identity of the file `path` names: ("inode", st_dev, st_ino) when it exists (what `os.path.samefile`
    compares), else ("path", its resolved absolute path). Two paths name the same file iff their keys are equal."""
    p = Path(path)
    try:
        st = p.stat()
        return ("inode", st.st_dev, st.st_ino)
    except OSError:
        pass
    try:
        resolved = p.resolve()
    except (OSError, RuntimeError):  # a symlink loop: compare as written
        resolved = Path(os.path.abspath(p))
    return ("path", os.path.normcase(str(resolved)))


def check_outputs(outputs: Iterable[tuple[str, PathLike]], inputs: Iterable[PathLike] = ()) -> None:
    """Raise ValueError (one line) when an output is an input or two outputs are one file; return None otherwise.

    `outputs`: (what the user sees it as, path) pairs, e.g. ("--csv t.csv", "t.csv"); the description starts
    the message. `inputs`: the paths that will be read. Inputs that do not exist are ignored (nothing to lose).
    Pure apart from reading file metadata: nothing is created or changed.
    """
    read: dict[tuple, str] = {}
    for path in inputs:
        key = file_key(path)
        if key[0] == "inode":
            read.setdefault(key, str(path))
    written: dict[tuple, str] = {}
    pending = []
    for what, path in outputs:
        check_writable(what, path)
        key = file_key(path)
        if key in read:
            raise ValueError(f"{what} would overwrite the input {read[key]}: write it elsewhere "
                             "(nothing was done)")
        pending.append((what, key))
    for what, key in pending:
        if key in written:
            raise ValueError(f"{written[key]} and {what} are the same file: give them different names "
                             "(nothing was done)")
        written[key] = what


def check_writable(what: str, path: PathLike) -> None:
    """ValueError (one line, starting with `what`) when the file `path` cannot be made: a folder is there, or a
    file stands where one of the folders above it must be. Missing folders are fine (the writers make them)."""
    from ..validation import file_above

    p = Path(path).expanduser()
    if p.is_dir():
        raise ValueError(f"{what}: {p} is a folder; give a file name (nothing was done)")
    if (above := file_above(p)) is not None:
        raise ValueError(f"{what}: {above} is a file, so {p} cannot be made (nothing was done)")


def score_columns(labels: Iterable[str], columns: Iterable[str]) -> list[str]:
    """Each label's probability column in a results table whose other columns are `columns`, all names distinct.

    A label keeps its name unless that is taken (one of `columns`, such as 'label', 'x', 'error', or another
    label's name); a taken name gets `score_` put before it until it is free, so labels ('x', 'score_x') give
    ('score_score_x', 'score_x'). Used by predict's CSV and Parquet and video's timeline (before: two columns
    of one name, and the Parquet sink failed)."""
    labels = list(labels)
    taken = set(columns) | set(labels)
    names: list[str] = []
    for label in labels:
        name = label
        if name in columns or name in names:
            while name in taken:
                name = f"score_{name}"
        taken.add(name)
        names.append(name)
    return names


__all__ = ["check_outputs", "check_writable", "file_key", "score_columns"]
