"""Training step 1 and 2: read the dataset, plan the split, and hold the tensors of each part.

The split plan gives every image one role (`train`, `val`, `test`, `unused`, or the official name of a
FER2013 test image); it comes from `--split-file`, from the run directory when a run is resumed, or is
drawn from the seed (`nasfer.data.splits.draw_split`). The plan is written to `<run>/splits.json`.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import numpy as np
import torch

from ..config import DataConfig, TrainConfig
from ..data import FaceDataset, read_dataset
from ..data.splits import TEST, TRAIN, UNUSED, VAL, apply_split_file, draw_split, read_split_file, sample_keys
from ..errors import DataError

TRAIN_SPLIT_NAMES = ("training", "train")


@dataclass
class TrainData:
    """The parts of a dataset a run uses, as the training loop wants them.

    train_x: uint8 tensor (n_train, 1, S, S); train_y: int64 tensor (n_train,); train_keys: str (n_train,)
    val_x / test_x: uint8 arrays (n, S, S); val_y / test_y: int64 arrays (n,); test_keys: str (n_test,)
    keys / roles: str arrays (N,) over the whole dataset (each image's name inside it, and its role).
    """

    label_names: tuple[str, ...]
    keys: np.ndarray
    roles: np.ndarray
    train_x: torch.Tensor
    train_y: torch.Tensor
    train_keys: np.ndarray
    val_x: np.ndarray
    val_y: np.ndarray
    test_x: np.ndarray
    test_y: np.ndarray
    test_keys: np.ndarray
    skipped: int = 0
    notes: list[str] = field(default_factory=list)

    @property
    def num_classes(self) -> int:
        return len(self.label_names)


def training_mask(data: FaceDataset) -> tuple[np.ndarray, bool]:
    """(bool mask (N,) of the training samples, whether the dataset has an official split).

    Raises DataError when the dataset has splits but none named Training/train.
    """
    present = {s.lower() for s in data.split_names()}
    lowered = np.char.lower(data.splits.astype(str))
    for name in TRAIN_SPLIT_NAMES:
        if name in present:
            return np.isin(lowered, ["train", "training"]), True
    if present == {"all"}:
        return np.ones(len(data), dtype=bool), False
    raise DataError(f"no Training/train split among {', '.join(data.split_names())}")


def training_split(data: FaceDataset) -> FaceDataset:
    """The official Training split, or the folder named train; a dataset without splits is all training."""
    mask, _ = training_mask(data)
    return data if mask.all() else data.subset(mask)


def load_dataset(cfg: TrainConfig, data_cfg: DataConfig) -> FaceDataset:
    """Read the dataset as the run asks: label set, and face crops cut by the detector with --detect-faces.

    Raises DataError (missing or unreadable dataset, unknown format) as the readers do.
    """
    kwargs = dict(contempt=data_cfg.contempt, strict=data_cfg.strict, label_set=cfg.label_set)
    if cfg.detect_faces:
        from ..data.facecrop import read_face_crops

        return read_face_crops(data_cfg.data, data_cfg.dataset, **kwargs)
    return read_dataset(data_cfg.data, data_cfg.dataset, **kwargs)


def plan_split(data: FaceDataset, cfg: TrainConfig, keys: np.ndarray, split_file: str | Path | None = None) -> np.ndarray:
    """Role of every sample, str (N,): from a split file, or drawn from the seed (`draw_split`).

    Raises DataError when the split file and the dataset do not name the same images.
    """
    if split_file:
        return apply_split_file(read_split_file(split_file), keys, where=str(split_file))
    mask, official = training_mask(data)
    return draw_split(data.labels, mask, data.splits if official else None, val_fraction=cfg.val_fraction,
                      test_fraction=cfg.test_fraction, seed=cfg.seed, limit=cfg.limit)


def split_file_for(cfg: TrainConfig, out: Path) -> str | Path | None:
    """--split-file, or, when `out` holds a run being resumed, the split that run started with."""
    if cfg.split_file:
        return cfg.split_file
    if (out / "last.pt").exists() and (out / "splits.json").exists():
        return out / "splits.json"
    return None


def split_data(data: FaceDataset, keys: np.ndarray, roles: np.ndarray) -> TrainData:
    """Cut the dataset into its train/val/test parts; DataError when train or val is empty, or when the training
    images are all of one class."""
    fit_idx, val_idx = np.flatnonzero(roles == TRAIN), np.flatnonzero(roles == VAL)
    if len(val_idx) == 0:
        raise DataError("validation split is empty: use a larger dataset or --val-fraction")
    if len(fit_idx) == 0:
        raise DataError("training split is empty: use a larger dataset or smaller --val-fraction/--test-fraction")
    present = np.unique(data.labels[fit_idx])
    if len(present) < 2:  # before: trained silently, a model that can only ever answer this class
        raise DataError(f"training split has one class ({data.label_names[int(present[0])]}, {len(fit_idx)} images): "
                        "a classifier needs at least two classes in its training images; add images of another class")
    test_idx = np.flatnonzero(np.char.lower(roles.astype(str)) == TEST)  # our draw, or a folder named test
    return TrainData(
        label_names=tuple(data.label_names), keys=keys, roles=roles,
        train_x=torch.from_numpy(data.images[fit_idx]).unsqueeze(1), train_y=torch.from_numpy(data.labels[fit_idx]),
        train_keys=keys[fit_idx], val_x=data.images[val_idx], val_y=data.labels[val_idx],
        test_x=data.images[test_idx], test_y=data.labels[test_idx], test_keys=keys[test_idx],
        skipped=len(data.skipped), notes=list(data.notes))


def untrained_labels(data: FaceDataset, roles: np.ndarray, *, folder_labels: bool = False) -> list[str]:
    """One line for each label that has images in the run's other parts (val, test, an official test split) but
    none among its training images: a label the model cannot learn (with --label-set folders, often a test
    folder named otherwise than its training folder); with `folder_labels` (--label-set folders, where every
    label is a folder of the dataset), also each label with no readable image at all."""
    in_use = (roles != TRAIN) & (roles != UNUSED)
    trained = set(np.unique(data.labels[roles == TRAIN]).tolist())
    lines = []
    if folder_labels:
        for label in sorted(set(range(len(data.label_names))) - set(np.unique(data.labels).tolist())):
            lines.append(f"label '{data.label_names[label]}' has no readable images (its folder's files were all "
                         "skipped, see above): the model gets an output for it that never learns from your data; "
                         "fix or remove that folder")
    for label in sorted(set(np.unique(data.labels[in_use]).tolist()) - trained):
        counts = Counter(roles[in_use & (data.labels == label)].tolist())
        where = ", ".join(f"{n} in {role}" for role, n in sorted(counts.items()))
        lines.append(f"label '{data.label_names[label]}' has no training images ({where}): the model cannot learn "
                     "it; is a folder named differently in the training part (a typo), or are its training "
                     "images still to be added?")
    return lines


#: How many skipped files/rows a run lists (the count is always complete).
SKIPPED_SHOWN = 5


def prepare_data(cfg: TrainConfig, data_cfg: DataConfig, out: Path, *, dataset: FaceDataset | None = None,
                 log: Callable[[str], None] = lambda msg: None) -> TrainData:
    """Steps 1-2 of a run: the dataset (read, or `dataset` as given) cut by its split plan."""
    data = dataset if dataset is not None else load_dataset(cfg, data_cfg)
    for note in data.notes:
        log(f"data: {note}")
    if data.skipped:  # the same report as nasfer evaluate's: the count, and where and why
        shown = "; ".join(str(s) for s in data.skipped[:SKIPPED_SHOWN])
        more = f" (and {len(data.skipped) - SKIPPED_SHOWN} more)" if len(data.skipped) > SKIPPED_SHOWN else ""
        log(f"data: skipped {len(data.skipped)} unreadable files/rows: {shown}{more}")
    keys = sample_keys(data.sources, data_cfg.data)
    roles = plan_split(data, cfg, keys, split_file_for(cfg, out))
    parts = split_data(data, keys, roles)
    for line in untrained_labels(data, roles, folder_labels=cfg.label_set == "folders"):
        log(f"data: warning: {line}")
    no_test = not len(parts.test_y) and set(roles.tolist()) <= {TRAIN, VAL, UNUSED}
    if cfg.test_fraction == 0 and no_test and not cfg.split_file:  # with --split-file, the file gave the roles
        log("data: --test-fraction 0: no images held out as test, so this run writes no test.json (score test "
            "images of your own with nasfer evaluate)")  # before: no test.json, without a word
    return parts


__all__ = ["TrainData", "training_mask", "training_split", "load_dataset", "plan_split", "split_file_for",
           "split_data", "untrained_labels", "prepare_data"]
