"""`FaceDataset`: the in-memory value every reader returns and every consumer takes."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from ..labels import EMOTIONS

#: Split names that stand for others: folder-named and officially-named splits can be asked for either way.
SPLIT_ALIASES = {"train": {"train", "training"}, "training": {"train", "training"},
                 "test": {"test", "publictest", "privatetest"}, "val": {"val", "validation"},
                 "validation": {"val", "validation"}}


def split_matches(name: str) -> set[str] | None:
    """The lower-case split names that `name` selects (case-insensitive, with SPLIT_ALIASES); None for
    'all' (every split). A name joined with '+' (as recorded for a mixed selection) selects each part."""
    wanted: set[str] = set()
    for part in name.split("+"):
        key = part.strip().lower()
        if key == "all":
            return None
        wanted |= SPLIT_ALIASES.get(key, {key})
    return wanted


@dataclass(frozen=True)
class Skipped:
    """One unreadable row or image: where it was and why it was skipped."""

    source: str
    reason: str

    def __str__(self) -> str:
        return f"{self.source}: {self.reason}"


@dataclass
class FaceDataset:
    """Grayscale face crops with integer labels and the split each came from.

    images: uint8 (N, S, S); labels: int64 (N,) indices into `label_names`;
    splits: str (N,) official split names (Training, PublicTest, PrivateTest) or the folder's name;
    sources: str (N,) file path or `file:row` of each sample (used for subject grouping, error reports).
    """

    images: np.ndarray
    labels: np.ndarray
    splits: np.ndarray
    sources: np.ndarray
    label_names: tuple[str, ...] = EMOTIONS
    skipped: list[Skipped] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    def __post_init__(self) -> None:
        n = len(self.images)
        for name in ("labels", "splits", "sources"):
            if len(getattr(self, name)) != n:
                raise ValueError(f"FaceDataset.{name} has {len(getattr(self, name))} entries for {n} images")

    def __len__(self) -> int:
        return len(self.images)

    def subset(self, mask_or_index: np.ndarray) -> "FaceDataset":
        """A new dataset of the selected samples (boolean mask or index array); skips/notes are kept."""
        idx = np.asarray(mask_or_index)
        return FaceDataset(
            images=self.images[idx],
            labels=self.labels[idx],
            splits=self.splits[idx],
            sources=self.sources[idx],
            label_names=self.label_names,
            skipped=list(self.skipped),
            notes=list(self.notes),
        )

    def split_names(self) -> list[str]:
        return sorted(set(self.splits.tolist()))

    def select_split(self, name: str) -> "FaceDataset":
        """Samples of one split, matched case-insensitively; 'all' keeps everything.

        'test' also matches PublicTest+PrivateTest and 'train' matches Training, so folder-named and
        officially-named splits can be asked for either way.
        """
        if split_matches(name) is None:
            return self
        mask = self.split_mask(name)
        if not mask.any():
            raise ValueError(f"split {name!r} not found; this dataset has: {', '.join(self.split_names()) or 'none'}")
        return self.subset(mask)

    def split_mask(self, name: str) -> np.ndarray:
        """bool (N,): the samples of split `name` as `select_split` matches it (all True for 'all')."""
        wanted = split_matches(name)
        if wanted is None:
            return np.ones(len(self.splits), dtype=bool)
        return np.isin(np.char.lower(self.splits.astype(str)), sorted(wanted))

    def class_counts(self) -> dict[str, int]:
        counts = np.bincount(self.labels, minlength=len(self.label_names))
        return {label: int(c) for label, c in zip(self.label_names, counts)}
