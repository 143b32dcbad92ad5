"""Read files from a folder or a zip through one interface, without extracting the zip."""

from __future__ import annotations

import zipfile
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import Iterator, Protocol

from ..errors import DataError

IMAGE_SUFFIXES = frozenset({".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff", ".webp", ".pgm", ".ppm"})
#: Files that operating systems and archivers leave behind; never data, never reported.
JUNK_NAMES = frozenset({".ds_store", "thumbs.db", "desktop.ini"})


@dataclass(frozen=True)
class Entry:
    """One file of a source: its POSIX path relative to the source root."""

    path: PurePosixPath

    @property
    def is_junk(self) -> bool:
        parts = [p.lower() for p in self.path.parts]
        return "__macosx" in parts or self.path.name.lower() in JUNK_NAMES or self.path.name.startswith("._")


class Source(Protocol):
    name: str

    def entries(self) -> Iterator[Entry]: ...

    def read(self, entry: Entry) -> bytes: ...


class FolderSource:
    def __init__(self, root: Path):
        self.root = root
        self.name = str(root)

    def entries(self) -> Iterator[Entry]:
        for path in sorted(self.root.rglob("*")):
            if path.is_file():
                yield Entry(PurePosixPath(path.relative_to(self.root).as_posix()))

    def read(self, entry: Entry) -> bytes:
        return (self.root / Path(*entry.path.parts)).read_bytes()


class ZipSource:
    def __init__(self, path: Path):
        self.name = str(path)
        try:
            self._zip = zipfile.ZipFile(path)
        except (zipfile.BadZipFile, OSError) as exc:
            raise DataError(f"{path}: not a readable zip file ({exc})") from None

    def entries(self) -> Iterator[Entry]:
        for info in sorted(self._zip.infolist(), key=lambda i: i.filename):
            if not info.is_dir():
                yield Entry(PurePosixPath(info.filename))

    def read(self, entry: Entry) -> bytes:
        try:
            return self._zip.read(str(entry.path))
        except (zipfile.BadZipFile, OSError, EOFError) as exc:  # damaged member
            raise DataError(f"{self.name}:{entry.path}: damaged zip member ({exc})") from None

    def close(self) -> None:
        self._zip.close()


def open_source(path: str | Path) -> Source:
    """A folder or a .zip as a Source; anything else is a DataError."""
    p = Path(path)
    if not p.exists():
        raise DataError(f"{p}: no such file or folder")
    if p.is_dir():
        return FolderSource(p)
    if zipfile.is_zipfile(p):
        return ZipSource(p)
    raise DataError(f"{p}: expected a folder, a .zip or a fer2013.csv")
