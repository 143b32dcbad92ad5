"""What `nasfer predict --backend ray` reads: image files named by local paths, folders, URIs of any
filesystem pyarrow understands (`s3://`, `gs://`, `abfs://`, `hdfs://`, `file://`), and list files.

A SOURCE is one of:
  - a local file or folder: listed exactly as the local backend lists it (`nasfer.commands.predict.collect`),
    so the `file` field of every record is the same;
  - a URI `scheme://...`: a file, or a folder listed recursively through `pyarrow.fs` (image suffixes
    only, hidden names skipped, sorted), each file shown by its URI;
  - `@LIST`: a text file (local path or URI) with one SOURCE per line (blank lines and `#` comments skipped).
A SOURCE that does not exist becomes one error record, as in the local backend.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

from ..errors import NasferError

URI = re.compile(r"^[A-Za-z][A-Za-z0-9+.-]*://")


@dataclass(frozen=True)
class Source:
    """One image to analyse: where it is, how records name it, whether it exists.

    location: a local path, or with `filesystem` (a URI pyarrow opens, e.g. `s3://bucket/photos`) the
    file's path inside that filesystem (`bucket/photos/a.jpg`)."""

    location: str
    shown: str
    missing: bool = False
    filesystem: str = ""


def is_uri(text: str) -> bool:
    return bool(URI.match(text))


def open_filesystem(uri: str):
    """(pyarrow FileSystem, path inside it) for `uri`; NasferError naming the URI when pyarrow cannot."""
    import pyarrow.fs as pafs

    try:
        return pafs.FileSystem.from_uri(uri)
    except Exception as exc:  # pyarrow raises ArrowInvalid / ArrowNotImplementedError / OSError
        raise NasferError(f"{uri}: not a filesystem pyarrow can open ({str(exc).strip()[:200]})") from None


def _uri_prefix(uri: str, path: str) -> str:
    """The part of `uri` before the filesystem path pyarrow returned for it (`s3://` for s3://b/k -> b/k)."""
    if uri.startswith("file://"):
        return "file://"
    scheme = uri.split("://", 1)[0] + "://"
    rest = uri[len(scheme):]
    cut = rest.find(path.lstrip("/")) if path else -1
    return scheme + (rest[:cut] if cut > 0 else "")


def _list_uri(uri: str) -> list[Source]:
    import pyarrow.fs as pafs

    from ..commands.predict import IMAGE_SUFFIXES

    fs, path = open_filesystem(uri)
    prefix = _uri_prefix(uri, path)
    try:
        info = fs.get_file_info(path)
    except OSError as exc:
        raise NasferError(f"{uri}: cannot be listed ({str(exc).strip()[:200]})") from None
    if info.type == pafs.FileType.NotFound:
        return [Source(path, uri, missing=True, filesystem=uri)]
    if info.type != pafs.FileType.Directory:
        return [Source(path, uri, filesystem=uri)]
    try:
        entries = fs.get_file_info(pafs.FileSelector(path, recursive=True))
    except OSError as exc:
        raise NasferError(f"{uri}: cannot be listed ({str(exc).strip()[:200]})") from None
    root = PurePosixPath(path)
    found = []
    for entry in entries:
        if entry.type != pafs.FileType.File or PurePosixPath(entry.path).suffix.lower() not in IMAGE_SUFFIXES:
            continue
        relative = PurePosixPath(entry.path).relative_to(root)
        if any(part.startswith(".") for part in relative.parts):
            continue
        found.append(entry.path)
    return [Source(p, prefix + p, filesystem=uri) for p in sorted(found)]


def is_list(raw: str) -> bool:
    """True for an `@LIST` argument (a list file's name after the @)."""
    return raw.startswith("@") and len(raw) > 1


def _read_list(spec: str) -> list[str]:
    """The entries of the list file `spec` ("@LIST": a local path or a URI): one per line, blank lines and `#`
    comments skipped. NasferError when it cannot be read."""
    name = spec[1:]
    try:
        if is_uri(name):
            fs, path = open_filesystem(name)
            with fs.open_input_stream(path) as stream:
                text = stream.read().decode("utf-8-sig")
        else:
            text = Path(name).read_text(encoding="utf-8-sig")  # -sig: a list saved with a BOM (Notepad)
    except (OSError, UnicodeDecodeError) as exc:
        raise NasferError(f"{name}: cannot read the list of sources ({exc})") from None
    lines = [line.strip() for line in text.splitlines()]
    return [line for line in lines if line and not line.startswith("#")]


def expand_lists(inputs: list[str]) -> list[str]:
    """`inputs` with each `@LIST` replaced by its entries, in order (the one @LIST rule of both predict
    backends). NasferError for an unreadable list file or a list that names another list."""
    expanded: list[str] = []
    for raw in inputs:
        if not is_list(raw):
            expanded.append(raw)
            continue
        entries = _read_list(raw)
        nested = next((entry for entry in entries if is_list(entry)), None)
        if nested is not None:
            raise NasferError(f"{raw[1:]}: a list of sources cannot name another list ({nested})")
        expanded += entries
    return expanded


def list_sources(inputs: list[str]) -> list[Source]:
    """Every image named by `inputs` (see the module docstring), in order; nothing is opened.

    NasferError for an unreadable list file, a list inside a list, or a URI pyarrow cannot list.
    """
    from ..commands.predict import collect

    sources: list[Source] = []
    for raw in expand_lists(inputs):
        if is_uri(raw):
            sources += _list_uri(raw)
        else:
            sources += [Source(str(item.path), item.shown, item.missing) for item in collect([raw])]
    return sources


__all__ = ["Source", "expand_lists", "is_list", "is_uri", "list_sources", "open_filesystem"]
