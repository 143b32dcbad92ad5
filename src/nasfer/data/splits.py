"""Reproducible stratified splits (validation carved out of Training; custom datasets' val/test)."""

from __future__ import annotations

import numpy as np


def stratified_split(labels: np.ndarray, fraction: float, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """(keep_idx, held_out_idx): `fraction` of every class held out, chosen by a seeded permutation.

    Each class with at least two samples gives at least one to each side, so rare classes
    (FER2013 disgust) are always present in validation.
    """
    if not 0.0 <= fraction < 1.0:
        raise ValueError(f"fraction must be in [0, 1), got {fraction}")
    labels = np.asarray(labels)
    rng = np.random.default_rng(seed)
    keep, held = [], []
    for cls in np.unique(labels):
        idx = np.flatnonzero(labels == cls)
        idx = idx[rng.permutation(len(idx))]
        n_held = int(round(fraction * len(idx)))
        if fraction > 0 and len(idx) >= 2:
            n_held = min(max(n_held, 1), len(idx) - 1)
        held.append(idx[:n_held])
        keep.append(idx[n_held:])
    return np.sort(np.concatenate(keep)), np.sort(np.concatenate(held))


# ---------------------------------------------------------------------------- split plans and files
#
# A split plan gives every sample of a dataset one role: "train", "val", "test", "unused" (left out by
# --limit), or, for datasets with an official split, the official name of a sample that is not in Training
# (e.g. "PublicTest"). The plan is written to <run>/splits.json keyed by each sample's path inside the
# dataset, so `--split-file` reproduces a run exactly even when the dataset lives somewhere else.

TRAIN, VAL, TEST, UNUSED = "train", "val", "test", "unused"
ROLES = (TRAIN, VAL, TEST, UNUSED)
VAL_SPLIT_NAMES = ("val", "valid", "validation")
SPLIT_FILE_FORMAT = "nasfer-splits/1"


def draw_split(
    labels: np.ndarray,
    training_mask: np.ndarray,
    official: np.ndarray | None = None,
    *,
    val_fraction: float,
    test_fraction: float = 0.0,
    seed: int = 0,
    limit: int = 0,
) -> np.ndarray:
    """Role of every sample (str array), drawn reproducibly from `seed`.

    With an official split (`official` given: the per-sample split names), samples outside Training keep
    their official name and Training is divided into train/val, unless the dataset has a val/ folder,
    which is then the validation split as it is. Without a test split (no official split, every sample in
    Training, e.g. FER2013 files named Training_* in plain class folders, or only train/ and val/ folders),
    `test_fraction` of every class
    is held out as "test" first; `--limit` then thins the candidates and `val_fraction` of the rest is "val".
    The train/val draw on Training is the one `Trainer` always made, so older runs resume unchanged.
    """
    labels = np.asarray(labels)
    training_mask = np.asarray(training_mask, dtype=bool)
    roles = np.full(len(labels), UNUSED, dtype=object)
    official_val = np.zeros(len(labels), dtype=bool)
    if official is not None:
        roles[~training_mask] = np.asarray(official, dtype=object)[~training_mask]
        official_val = np.isin(np.char.lower(np.asarray(official).astype(str)), VAL_SPLIT_NAMES) & ~training_mask
        roles[official_val] = VAL  # a val/ folder is the validation split: nothing is carved from train/
    candidates = np.flatnonzero(training_mask)
    # no test split of its own: no official split, or none outside Training but a val/ folder (before, train/ with
    # val/ and no test/ trained without test images, in silence)
    own_test = official is not None and bool((~training_mask & ~official_val).any())
    if not own_test and test_fraction > 0:
        keep, held = stratified_split(labels[candidates], test_fraction, seed)
        roles[candidates[held]] = TEST
        candidates = candidates[keep]
    if 0 < limit < len(candidates):
        _, keep = stratified_split(labels[candidates], limit / len(candidates), seed)
        candidates = candidates[keep]
    fit, val = stratified_split(labels[candidates], 0.0 if official_val.any() else val_fraction, seed)
    roles[candidates[fit]] = TRAIN
    roles[candidates[val]] = VAL
    return roles.astype(str)


def sample_keys(sources: np.ndarray, root: str | None) -> np.ndarray:
    """Each sample's name inside its dataset (`<root>:` stripped), stable when the dataset is moved."""
    from pathlib import Path

    prefix = f"{Path(root).expanduser()}:" if root else None  # as the readers name their source
    if prefix is None:
        return np.asarray(sources).astype(str)
    return np.asarray([s[len(prefix):] if s.startswith(prefix) else s for s in np.asarray(sources).tolist()]).astype(str)


def write_split_file(path, keys: np.ndarray, roles: np.ndarray, **meta) -> None:
    """JSON: {"format", <meta>, "counts": {role: n}, "splits": {sample key: role}}."""
    import json
    from pathlib import Path

    keys, roles = np.asarray(keys).tolist(), np.asarray(roles).tolist()
    values, counts = np.unique(np.asarray(roles, dtype=str), return_counts=True)
    doc = {"format": SPLIT_FILE_FORMAT, **meta, "counts": {str(v): int(c) for v, c in zip(values, counts)},
           "splits": dict(zip(keys, roles))}
    Path(path).write_text(json.dumps(doc, indent=1))


def official_role(role: str) -> bool:
    """Whether `role` is a dataset's own name of a split outside Training, as `draw_split` keeps it: FER2013's
    PublicTest/PrivateTest, a test folder's name (any case; a train or val folder's images get the roles train
    and val instead), or "all" (images outside any split folder of a dataset that has some)."""
    from .readers import SPLIT_FOLDERS

    return role.lower() in SPLIT_FOLDERS - {"train", "training", *VAL_SPLIT_NAMES} or role == "all"


def read_split_file(path) -> dict[str, str]:
    """The key -> role mapping of a split file (ours, or a plain {key: role} JSON object).

    DataError when the file is missing or no such mapping, or when a role is neither one of ROLES nor an
    official split name (`official_role`): the message names the file, the first such key and the roles."""
    import json
    from pathlib import Path

    from ..errors import DataError

    p = Path(path).expanduser()
    if not p.is_file():
        raise DataError(f"{p}: split file not found")
    try:
        doc = json.loads(p.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise DataError(f"{p}: not a JSON split file ({exc})") from None
    mapping = doc.get("splits", doc) if isinstance(doc, dict) else None
    if not isinstance(mapping, dict):
        raise DataError(f"{p}: expected a JSON object mapping each image to train, val or test")
    mapping = {str(k): v for k, v in mapping.items() if k not in ("format", "counts")}
    bad = next((k for k, v in mapping.items() if not (isinstance(v, str) and (v in ROLES or official_role(v)))), None)
    if bad is not None:
        raise DataError(f"{p}: {bad} has role {mapping[bad]!r}; roles are {', '.join(ROLES)}, or a dataset's own "
                        "name of a split outside Training (PublicTest, PrivateTest, a test folder's name, or all)")
    return mapping


#: How many image names a split-file mismatch names in each direction (the counts are always complete).
MISMATCH_SHOWN = 3


def apply_split_file(mapping: dict[str, str], keys: np.ndarray, where: str = "split file") -> np.ndarray:
    """Roles of `keys` from a split file; the file and the dataset must name exactly the same images."""
    from ..errors import DataError

    keys = np.asarray(keys).tolist()
    present = set(keys)
    missing = [k for k in keys if k not in mapping]
    gone = [k for k in mapping if k not in present]
    if missing or gone:  # both directions, a few names each (before: the first name of one direction only)
        def some(names: list[str]) -> str:
            return ", ".join(names[:MISMATCH_SHOWN]) + (", ..." if len(names) > MISMATCH_SHOWN else "")

        parts = ([f"{len(missing)} image(s) of the dataset are not in it ({some(missing)})"] if missing else []) + \
                ([f"{len(gone)} image(s) it names are not in the dataset ({some(gone)})"] if gone else [])
        raise DataError(f"{where}: {'; '.join(parts)}; the dataset changed since the split was written, so the run "
                        "cannot be reproduced on this data (draw a new split without --split-file)")
    return np.asarray([mapping[k] for k in keys], dtype=object).astype(str)


# ---------------------------------------------------------------------------- subject-independent folds

#: CK+ file names start with the subject id: S005_001_00000011.png.
CKPLUS_SUBJECT_REGEX = r"^(S\d+)_"


def subject_ids(sources: np.ndarray, pattern: str = CKPLUS_SUBJECT_REGEX) -> np.ndarray:
    """Subject id of every sample: the regex's first group (or whole match) searched in the file name.

    A pattern containing '/' is searched in the whole path instead (subjects named by folders).
    A name the pattern does not match is an error, never a subject of its own: that would put one
    person on both sides of a fold.
    """
    import re

    from ..errors import DataError

    try:
        rx = re.compile(pattern)
    except re.error as exc:
        raise DataError(f"--group-regex {pattern!r} is not a valid regular expression ({exc})") from None
    out, unmatched = [], []
    for source in np.asarray(sources).tolist():
        text = source if "/" in pattern else source.replace("\\", "/").rsplit("/", 1)[-1].rsplit(":", 1)[-1]
        m = rx.search(text)
        if m is None:
            unmatched.append(text)
            out.append("")
            continue
        out.append(m.group(1) if rx.groups else m.group(0))
    if unmatched:
        raise DataError(f"--group-regex {pattern!r} does not match {len(unmatched)} file name(s) (first: "
                        f"{unmatched[0]}); give a pattern whose first group is the subject id")
    return np.asarray(out).astype(str)


def group_kfold(labels: np.ndarray, groups: np.ndarray, n_folds: int, seed: int = 0) -> list[np.ndarray]:
    """Test indices of `n_folds` folds that never split a group, with class shares kept close.

    Greedy, as scikit-learn's StratifiedGroupKFold: groups are visited in a seeded order (the most
    class-skewed first) and each joins the fold where the spread of every class's share across folds
    grows least (ties: the smaller fold). Every sample is in exactly one fold's test part.
    """
    from ..errors import DataError

    labels, groups = np.asarray(labels), np.asarray(groups)
    if n_folds < 2:
        raise ValueError(f"need at least 2 folds, got {n_folds}")
    names, g = np.unique(groups, return_inverse=True)
    classes, y = np.unique(labels, return_inverse=True)
    if len(names) < n_folds:
        raise DataError(f"{len(names)} subjects cannot fill {n_folds} folds: use --folds {len(names)} or fewer")
    counts = np.zeros((len(names), len(classes)))
    np.add.at(counts, (g, y), 1)
    total = counts.sum(0)
    rng = np.random.default_rng(seed)
    order = rng.permutation(len(names))
    order = order[np.argsort(-counts[order].std(axis=1), kind="stable")]
    fold_counts = np.zeros((n_folds, len(classes)))
    fold_of = np.empty(len(names), dtype=np.int64)
    for visited, group in enumerate(order):
        sizes = fold_counts.sum(1)
        empty = np.flatnonzero(sizes == 0)
        if len(empty) and len(order) - visited <= len(empty):
            choices = empty  # exactly enough groups left to give every empty fold one
        else:
            choices = np.arange(n_folds)
        best, best_score = -1, np.inf
        for f in choices:
            trial = fold_counts.copy()
            trial[f] += counts[group]
            score = float(np.mean(np.std(trial / total, axis=0)))
            if score < best_score - 1e-12 or (abs(score - best_score) <= 1e-12 and sizes[f] < sizes[best]):
                best, best_score = int(f), score
        fold_counts[best] += counts[group]
        fold_of[group] = best
    sample_fold = fold_of[g]
    return [np.flatnonzero(sample_fold == f) for f in range(n_folds)]
