"""Dataset readers: fer2013.csv, Kaggle FER2013 image folders, CK+48, any <class>/<image> tree.

All read from a folder or a zip without extracting, all return a `FaceDataset` of 48x48 uint8
crops, and all treat bad rows and images the same way: skip and count (reason and place kept in
`FaceDataset.skipped`), or raise `DataError` at the first one with `strict=True`. A class folder is
not a bad image: read with the canonical labels, a folder that names no emotion is a `DataError` (pass
`label_set="folders"` to use the folder names as the labels), not a silent skip of all its images.
"""

from __future__ import annotations

import csv
import io
import re
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from typing import Callable, Iterable, Literal

import numpy as np

from ..errors import DataError
from ..labels import EMOTIONS, SYNONYMS, canonical_name, is_known, normalize_name
from .dataset import FaceDataset, Skipped
from .sources import IMAGE_SUFFIXES, Entry, Source, open_source

LabelSet = Literal["canonical", "folders"]
OFFICIAL_SPLITS = ("Training", "PublicTest", "PrivateTest")
#: Folder names above the class folders that name a split (others, such as CK+48, do not).
SPLIT_FOLDERS = frozenset({"train", "training", "test", "testing", "val", "valid", "validation",
                           "publictest", "privatetest"})
_SPLIT_PREFIX = re.compile(r"^(Training|PublicTest|PrivateTest)_", re.IGNORECASE)
FER_CSV_COLUMNS = ("emotion", "pixels")


@dataclass
class _Collector:
    """Accumulates samples and skips; enforces strict mode in one place."""

    strict: bool
    size: int
    images: list[np.ndarray] = field(default_factory=list)
    labels: list[int] = field(default_factory=list)
    splits: list[str] = field(default_factory=list)
    sources: list[str] = field(default_factory=list)
    skipped: list[Skipped] = field(default_factory=list)

    def skip(self, source: str, reason: str) -> None:
        if self.strict:
            raise DataError(f"{source}: {reason}")
        self.skipped.append(Skipped(source, reason))

    def add(self, image: np.ndarray, label: int, split: str, source: str) -> None:
        if image.shape != (self.size, self.size):
            import cv2

            image = cv2.resize(image, (self.size, self.size), interpolation=cv2.INTER_AREA)
        self.images.append(image)
        self.labels.append(label)
        self.splits.append(split)
        self.sources.append(source)

    def build(self, where: str, label_names: tuple[str, ...], notes: list[str]) -> FaceDataset:
        if not self.images:
            detail = f" ({len(self.skipped)} skipped, first: {self.skipped[0]})" if self.skipped else ""
            raise DataError(f"{where}: no usable images found{detail}")
        return FaceDataset(
            images=np.stack(self.images).astype(np.uint8),
            labels=np.asarray(self.labels, dtype=np.int64),
            splits=np.asarray(self.splits, dtype=object).astype(str),
            sources=np.asarray(self.sources, dtype=object).astype(str),
            label_names=label_names,
            skipped=self.skipped,
            notes=notes,
        )


def decode_gray(data: bytes) -> np.ndarray | None:
    """Bytes of any common image format -> 2-D uint8 grayscale, or None if undecodable.

    16-bit and float images keep their depth while decoding and become uint8 the way the runtime makes them
    (`nasfer.runtime.images.gray_to_uint8`), so a model sees a training image as predict shows it; before, a
    12-bit PNG trained almost black (OpenCV's 8-bit conversion drops the low 8 bits) and float TIFFs were skipped.
    """
    import cv2

    from ..runtime.images import depth_to_uint8

    if not data:
        return None
    arr = cv2.imdecode(np.frombuffer(data, dtype=np.uint8), cv2.IMREAD_GRAYSCALE | cv2.IMREAD_ANYDEPTH)
    if arr is None or arr.size == 0 or arr.ndim != 2:
        return None
    return depth_to_uint8(arr)


# ---------------------------------------------------------------------------- fer2013.csv


def _find_csv(source: Source) -> Entry | None:
    csvs = [e for e in source.entries() if e.path.suffix.lower() == ".csv" and not e.is_junk]
    preferred = [e for e in csvs if "fer" in e.path.name.lower()]
    return (preferred or csvs or [None])[0]


def _csv_text(path: Path) -> tuple[str, str]:
    """(name, text) of the fer2013 CSV at `path`: a .csv file, or one inside a folder or zip."""
    if path.is_file() and path.suffix.lower() == ".csv":
        return str(path), path.read_text(encoding="utf-8", errors="replace")
    source = open_source(path)
    entry = _find_csv(source)
    if entry is None:
        raise DataError(f"{path}: no .csv file found")
    return f"{source.name}:{entry.path}", source.read(entry).decode("utf-8", errors="replace")


def read_fer2013_csv(path: Path, *, strict: bool = False, size: int = 48, **_: object) -> FaceDataset:
    """`emotion,pixels,Usage` rows: 2304 space-separated pixels each; Usage names the split."""
    name, text = _csv_text(path)
    reader = csv.DictReader(io.StringIO(text))
    fields = [f.strip().lower() for f in (reader.fieldnames or [])]
    missing = [c for c in FER_CSV_COLUMNS if c not in fields]
    if missing:
        raise DataError(f"{name}: missing column(s) {', '.join(missing)}; expected emotion,pixels,Usage")
    reader.fieldnames = fields
    out = _Collector(strict=strict, size=size)
    side = 48
    for row_no, row in enumerate(reader, start=2):  # row 1 is the header
        where = f"{name}:row {row_no}"
        emotion = (row.get("emotion") or "").strip()
        if not emotion.isdigit() or int(emotion) >= len(EMOTIONS):
            out.skip(where, f"emotion must be an integer 0-{len(EMOTIONS) - 1}, got {emotion!r}")
            continue
        tokens = (row.get("pixels") or "").split()
        if len(tokens) != side * side:
            out.skip(where, f"expected {side * side} pixels, got {len(tokens)}")
            continue
        try:
            pixels = np.array(tokens, dtype=np.int64)
        except ValueError:
            bad = next(t for t in tokens if not t.lstrip("-").isdigit())
            out.skip(where, f"non-numeric pixel value {bad[:20]!r}")
            continue
        if pixels.min() < 0 or pixels.max() > 255:
            out.skip(where, "pixel values must be within 0-255")
            continue
        usage = (row.get("usage") or "Training").strip() or "Training"
        official = next((s for s in OFFICIAL_SPLITS if s.lower() == usage.lower()), None)
        if official is None:  # before: any other value became a split of its own, neither trained on nor scored
            out.skip(where, f"Usage must be one of {', '.join(OFFICIAL_SPLITS)}, got {usage[:20]!r}")
            continue
        out.add(pixels.astype(np.uint8).reshape(side, side), int(emotion), official, where)
    return out.build(name, EMOTIONS, [])


# ---------------------------------------------------------------------------- image folders


def _class_and_split(path: PurePosixPath) -> tuple[str, str] | None:
    """(class folder, split) of an image path; None for files not inside a class folder."""
    parts = path.parts
    if len(parts) < 2:
        return None
    class_dir = parts[-2]
    parent = parts[-3].lower() if len(parts) >= 3 else ""
    split = parts[-3] if parent in SPLIT_FOLDERS else "all"
    match = _SPLIT_PREFIX.match(path.name)
    if match:  # FER2013 files carry their official split in the name; it beats the folder
        split = next(s for s in OFFICIAL_SPLITS if s.lower() == match.group(1).lower())
    return class_dir, split


#: How many class folders a refusal names (the count is always complete).
FOLDERS_SHOWN = 10


def check_canonical_folders(where: str, class_dirs: Iterable[str]) -> None:
    """DataError naming every class folder (with its image count) that is not a canonical emotion, a synonym
    of one or a known label without one (CK+ contempt), and saying how to use the folder names as labels.

    `class_dirs`: the class folder of every image, repeated per image. Read with the canonical labels, such a
    folder is far more often a typo or a dataset of other classes than something to leave out in silence.
    """
    unknown = Counter(c for c in class_dirs if not is_known(c))
    if not unknown:
        return
    names = sorted(unknown, key=str.lower)
    shown = ", ".join(f"'{c}' ({unknown[c]} image{'s' if unknown[c] != 1 else ''})" for c in names[:FOLDERS_SHOWN])
    more = f" and {len(names) - FOLDERS_SHOWN} more" if len(names) > FOLDERS_SHOWN else ""
    raise DataError(
        f"{where}: class folder{'s' if len(names) > 1 else ''} {shown}{more} "
        f"{'are' if len(names) > 1 else 'is'} not {'' if len(names) > 1 else 'a '}canonical emotion "
        f"label{'s' if len(names) > 1 else ''} ({', '.join(EMOTIONS)}, or a synonym such as "
        f"{', '.join(sorted(SYNONYMS)[:4])}, ...); to use the folder names as the labels, train with "
        f"--label-set folders (nasfer train, nasfer crossval), or rename a folder whose name is a typo")


def check_not_nested(where: str, image_paths: Iterable[PurePosixPath]) -> None:
    """DataError when a folder holds images and also, at any depth, a folder of images: the class of an image is
    the folder that holds it, so `happy/session2/x.png` would be a class 'session2' of its own (or, with the
    canonical labels, `happy/sad/x.png` a sad face) beside the images of `happy`."""
    folders = {p.parent for p in image_paths}
    for inner in sorted(folders):
        outer = next((f for f in inner.parents if f in folders), None)
        if outer is not None:
            raise DataError(
                f"{where}: the class folder '{outer}' holds images and also the folder '{inner}' with images; a "
                f"class is the folder that holds its images, so '{inner}' would be read as a class of its own "
                f"('{inner.name}'): move its images up into '{outer}', or out into a class folder of their own")


def _folder_label_map(
    class_dirs: Iterable[str], label_set: LabelSet, contempt: str
) -> tuple[tuple[str, ...], Callable[[str], int | None]]:
    """Label names and a function class-dir -> label index or None (excluded: CK+ contempt by default).

    Canonical labels: call `check_canonical_folders` first (a folder with no canonical meaning is refused).
    """
    if label_set == "folders":
        by_name: dict[str, set[str]] = {}
        for c in class_dirs:
            by_name.setdefault(normalize_name(c), set()).add(c)
        clash = next((sorted(raw) for raw in by_name.values() if len(raw) > 1), None)
        if clash:  # before: merged into one label in silence ('very-happy' and 'very happy' -> very_happy)
            raise DataError(f"the class folders {', '.join(repr(c) for c in clash)} would be one label, "
                            f"'{normalize_name(clash[0])}' (labels are folder names lower-cased, spaces and "
                            "hyphens as _): rename them to one name, or to different labels")
        names = tuple(sorted(by_name))
        return names, lambda c: names.index(normalize_name(c))

    def to_index(class_dir: str) -> int | None:
        mapped = canonical_name(class_dir, contempt)  # type: ignore[arg-type]
        return None if mapped is None else EMOTIONS.index(mapped)

    return EMOTIONS, to_index


def read_image_folders(
    path: Path,
    *,
    contempt: str = "exclude",
    strict: bool = False,
    label_set: LabelSet = "canonical",
    size: int = 48,
) -> FaceDataset:
    """Any `[<split>/]<class>/<image>` tree in a folder or zip (Kaggle FER2013, CK+48, custom).

    With the canonical labels, a class folder that names no canonical emotion (nor a synonym, nor CK+
    contempt) is a DataError naming it (`check_canonical_folders`), never a silent skip of its images;
    unreadable files are skipped and counted (DataError at the first with `strict`).
    """
    source = open_source(path)
    located: list[tuple[Entry, str, str]] = []
    out = _Collector(strict=strict, size=size)
    loose = 0  # images at the root: no class folder names their label
    for entry in source.entries():
        if entry.is_junk:
            continue
        place = _class_and_split(entry.path)
        if place is None:  # README, licence, csv at the root: not samples
            loose += entry.path.suffix.lower() in IMAGE_SUFFIXES
            continue
        class_dir, split = place
        if entry.path.suffix.lower() not in IMAGE_SUFFIXES:
            out.skip(f"{source.name}:{entry.path}", "not an image file")
            continue
        located.append((entry, class_dir, split))
    check_not_nested(source.name, (entry.path for entry, _, _ in located))
    if label_set == "canonical":
        check_canonical_folders(source.name, (c for _, c, _ in located))
    label_names, to_index = _folder_label_map({c for _, c, _ in located}, label_set, contempt)
    excluded: Counter[str] = Counter()
    for entry, class_dir, split in located:
        where = f"{source.name}:{entry.path}"
        index = to_index(class_dir)
        if index is None:
            excluded[normalize_name(class_dir)] += 1
            continue
        image = decode_gray(source.read(entry))
        if image is None:
            out.skip(where, "corrupt or unsupported image")
            continue
        out.add(image, index, split, where)
    notes = [
        f"{n} '{name}' images excluded: no canonical label (--contempt neutral maps contempt to neutral)"
        for name, n in sorted(excluded.items())
    ]
    if loose:  # before: dropped without a word
        notes.append(f"{loose} image file{'s' * (loose != 1)} at the top of {source.name} not read: an image's "
                     "label is the name of the folder it is in (<class>/<image> or <split>/<class>/<image>)")
    if label_set == "canonical" and any(normalize_name(c) == "contempt" for _, c, _ in located) and contempt == "neutral":
        notes.append("CK+ 'contempt' mapped to 'neutral' (--contempt neutral), as the original design did")
    return out.build(source.name, label_names, notes)


# ---------------------------------------------------------------------------- dispatch

DatasetKind = Literal["auto", "fer2013", "fer2013-csv", "ckplus", "folder"]


def detect_kind(path: Path) -> str:
    """Guess the dataset format from names alone (cheap: no image is decoded)."""
    if path.is_file() and path.suffix.lower() == ".csv":
        return "fer2013-csv"
    source = open_source(path)
    names = [e.path for e in source.entries() if not e.is_junk]
    if not any(p.suffix.lower() in IMAGE_SUFFIXES for p in names) and any(p.suffix.lower() == ".csv" for p in names):
        return "fer2013-csv"
    lowered = {part.lower() for p in names for part in p.parts[:-1]}
    if "ck+48" in lowered or "contempt" in lowered:
        return "ckplus"
    if any(_SPLIT_PREFIX.match(p.name) for p in names[:2000]):
        return "fer2013"
    return "folder"


READERS: dict[str, Callable[..., FaceDataset]] = {
    "fer2013-csv": read_fer2013_csv,
    "fer2013": read_image_folders,
    "ckplus": read_image_folders,
    "folder": read_image_folders,
}


def read_dataset(
    path: str | Path,
    dataset: DatasetKind = "auto",
    *,
    contempt: str = "exclude",
    strict: bool = False,
    label_set: LabelSet = "canonical",
    size: int = 48,
) -> FaceDataset:
    """Read any supported dataset into memory. See the module docstring for the formats."""
    p = Path(path).expanduser()
    kind = detect_kind(p) if dataset == "auto" else dataset
    if kind not in READERS:
        raise DataError(f"unknown dataset format {dataset!r}; choose one of auto, {', '.join(READERS)}")
    if kind == "fer2013-csv" and label_set != "canonical":
        raise DataError("fer2013.csv has the canonical labels only; use --label-set canonical")
    return READERS[kind](p, contempt=contempt, strict=strict, label_set=label_set, size=size)
