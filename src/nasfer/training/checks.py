"""What a training run may be, checked before any work: the inputs a run cannot start without, the folder a
new run may write into, and the recipe fields a resumed run may change (how fast it runs, not what it
learns).

`check_inputs` refuses at once, before the dataset is read or the run directory is made; `recipe_changes`
lists what a resumed run's flags change against its checkpoint, which `nasfer.train.Trainer` refuses.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any

from ..config import DataConfig, TrainConfig, flag_of
from ..data import FaceDataset
from ..errors import ModelError


#: TrainConfig fields a resumed run may change: how fast it runs.
RESUMABLE = ("threads", "device")
#: Fields not compared on resume: where it writes, which flags were typed, the preset (its effect is in the
#: fields it sets, which are compared), the architecture flags and paths (the model they build is compared,
#: with its defaults filled in), and the starting weights (a resumed run starts from its own last.pt).
NOT_COMPARED = ("out", "explicit", "preset", "arch", "genotype", "width", "cells", "init_from")
RESUMABLE_FLAGS = tuple(flag_of(f) for f in dataclasses.fields(TrainConfig) if f.name in RESUMABLE)


class RecipeChanged(ModelError):
    """A resumed run's flags change its recipe: `last` (its last.pt), `changes` ('--flag OLD -> NEW' each)."""

    def __init__(self, message: str, last: Path, changes: list[str]):
        super().__init__(message)
        self.last, self.changes = last, changes


def recipe_changes(saved: dict[str, Any], current: dict[str, Any]) -> list[str]:
    """'--flag OLD -> NEW' for each TrainConfig field, outside RESUMABLE and NOT_COMPARED, whose value in `current` (a resolved
    config, `to_dict`) differs from `saved` (the checkpoint's); fields missing from either side are skipped
    (checkpoints of older versions)."""
    flags = {f.name: flag_of(f) for f in dataclasses.fields(TrainConfig)}
    changes = []
    for name, flag in flags.items():
        if name in RESUMABLE + NOT_COMPARED or name not in saved or name not in current:
            continue
        old, new = saved[name], current[name]
        if (list(old) if isinstance(old, (list, tuple)) else old) != (list(new) if isinstance(new, (list, tuple)) else new):
            changes.append(f"{flag} {old} -> {new}")
    return changes


#: What a new run's folder may hold before its first checkpoint: its own config and split (a run that stopped
#: before finishing an epoch, or a split crossval wrote), a teacher cache copied by retrain.py, and, once it runs,
#: its other outputs.
NEW_RUN_FILES = ("config.json", "splits.json", "teacher_cache.npz", "history.json", "best.pt", "curves.png")


def check_inputs(cfg: TrainConfig, data_cfg: DataConfig, dataset: FaceDataset | None = None) -> None:
    """Refuse at once, before any data is read or the run directory is made, a run that cannot start:
    --freeze-epochs without --init-from (ValueError), an --out that is a file, or for a new run a folder holding
    other files (ValueError), a --device torch cannot use here (ValueError), a missing --data
    unless `dataset` is given (DataError), a missing or unreadable --split-file (DataError), an --init-from
    that is no training checkpoint (ModelError)."""
    from ..data.splits import read_split_file
    from ..errors import DataError
    from ..finetune import check_init_path
    from .precision import check_device
    from ..validation import check_new_run_folder, check_out_outside_data, check_output_folder, is_training_run_config

    if cfg.freeze_epochs and not cfg.init_from:
        raise ValueError("--freeze-epochs freezes a pretrained backbone: it needs --init-from")
    if cfg.out:
        check_output_folder(cfg.out, "the run directory")
        check_out_outside_data(cfg.out, data_cfg.data, "the run")
        out = Path(cfg.out).expanduser()
        if not (out / "last.pt").exists():  # a new run: nothing but what a run (or crossval, retrain.py) puts first
            config = out / "config.json"
            if config.is_file() and not is_training_run_config(config):
                raise ValueError(f"--out {cfg.out}: its config.json is not a training run's (a search's folder?); "
                                 "give a new or empty folder (nothing was done)")
            check_new_run_folder(cfg.out, "a training run", NEW_RUN_FILES)
    check_device(cfg.device)
    if dataset is None:
        if not data_cfg.data:
            raise DataError("--data is required (a dataset zip, folder or fer2013.csv)")
        data_path = Path(data_cfg.data).expanduser()
        if not data_path.exists():
            raise DataError(f"{data_path}: no such file or folder")
    if cfg.split_file:
        read_split_file(cfg.split_file)
    if cfg.init_from:
        check_init_path(cfg.init_from)


__all__ = ["RecipeChanged", "RESUMABLE", "NOT_COMPARED", "RESUMABLE_FLAGS", "NEW_RUN_FILES", "recipe_changes", "check_inputs"]
