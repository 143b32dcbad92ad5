"""Canonical emotion labels and the maps from other datasets' names onto them.

Everything that turns a folder name or a dataset's class id into a label goes through here, so
there is exactly one place that decides what "anger" or CK+'s "contempt" means.
"""

from __future__ import annotations

from typing import Literal, Sequence

import numpy as np

#: FER2013's order; index = class id in every model this project trains on the canonical set.
EMOTIONS: tuple[str, ...] = ("angry", "disgust", "fear", "happy", "sad", "surprise", "neutral")

#: Other spellings seen in public datasets (lower-case) -> canonical name.
SYNONYMS: dict[str, str] = {
    "anger": "angry",
    "mad": "angry",
    "disgusted": "disgust",
    "disgusting": "disgust",
    "fearful": "fear",
    "afraid": "fear",
    "scared": "fear",
    "happiness": "happy",
    "joy": "happy",
    "smile": "happy",
    "sadness": "sad",
    "unhappy": "sad",
    "surprised": "surprise",
    "suprise": "surprise",
    "calm": "neutral",
}

#: Labels that exist in other datasets but have no canonical counterpart.
UNMAPPED: frozenset[str] = frozenset({"contempt"})

ContemptPolicy = Literal["exclude", "neutral"]
CONTEMPT_POLICIES: tuple[str, ...] = ("exclude", "neutral")


def normalize_name(name: str) -> str:
    """Lower-case, strip, and fold separators so 'Sadness ', 'SAD' and 'sad' compare equal."""
    return name.strip().lower().replace("-", "_").replace(" ", "_")


def canonical_name(name: str, contempt: ContemptPolicy = "exclude") -> str | None:
    """Map a dataset's class name to a canonical label, or None when it has none.

    Raises ValueError for names that are neither canonical, a known synonym, nor a known unmapped
    label: an unknown folder is far more often a mistake than a new emotion.
    """
    key = normalize_name(name)
    if key in EMOTIONS:
        return key
    if key in SYNONYMS:
        return SYNONYMS[key]
    if key == "contempt":
        if contempt not in CONTEMPT_POLICIES:
            raise ValueError(f"contempt policy must be one of {CONTEMPT_POLICIES}, got {contempt!r}")
        return "neutral" if contempt == "neutral" else None
    raise ValueError(
        f"unknown emotion class {name!r}; expected one of {', '.join(EMOTIONS)} "
        f"(or a synonym such as {', '.join(sorted(SYNONYMS)[:4])}, ...)"
    )


def canonical_index(name: str, contempt: ContemptPolicy = "exclude") -> int | None:
    """Class id of `name` in EMOTIONS, or None where the label is excluded (CK+ contempt)."""
    mapped = canonical_name(name, contempt)
    return None if mapped is None else EMOTIONS.index(mapped)


def is_known(name: str) -> bool:
    """True when `name` maps onto the canonical set or is a known unmapped label."""
    key = normalize_name(name)
    return key in EMOTIONS or key in SYNONYMS or key in UNMAPPED


def _canonical_or_none(name: str) -> str | None:
    try:
        return canonical_name(name)
    except ValueError:
        return None


def is_canonical_label_set(labels: Sequence[str]) -> bool:
    """True when every label is a canonical emotion or a synonym (the dataset can then be read canonically)."""
    return all(_canonical_or_none(label) is not None for label in labels)


def reading_label_set(model_labels: Sequence[str], dataset_kind: str = "auto") -> str:
    """How to read a dataset to score or calibrate a model with `model_labels`: "canonical" (folder names and
    synonyms mapped onto the seven emotions) when the model's labels are all canonical or the data is a
    FER2013 CSV (whose rows carry only the seven), else "folders" (the folder names as they are), as the
    model was trained (`nasfer train --label-set`). The one rule of `evaluate` and `export --quantize`."""
    return "canonical" if is_canonical_label_set(model_labels) or dataset_kind == "fer2013-csv" else "folders"


def label_index_map(dataset_labels: Sequence[str], model_labels: Sequence[str]) -> np.ndarray:
    """For each dataset label, the index of the same label in the model's (-1 where it has none).

    Same name first (after case/separator folding), then the same canonical emotion ('sadness' = 'sad').
    """
    exact = {normalize_name(m): j for j, m in enumerate(model_labels)}
    canon = {}
    for j, m in enumerate(model_labels):
        c = _canonical_or_none(m)
        if c is not None:
            canon.setdefault(c, j)
    out = np.full(len(dataset_labels), -1, dtype=np.int64)
    for i, d in enumerate(dataset_labels):
        key = normalize_name(d)
        if key in exact:
            out[i] = exact[key]
        elif _canonical_or_none(d) in canon:
            out[i] = canon[_canonical_or_none(d)]
    return out
