"""The search's data: the Training split divided into the part children learn from and the validation
part that scores them, drawn exactly as `nasfer train` draws it (`nasfer.train.plan_split`: same seed and
--val-fraction give the same images, or a split file), so the search, the proxy calibration and the
retrained models are all scored on one validation split. Test images are never read.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import torch

from ..errors import DataError


@dataclass
class SearchData:
    """uint8 face crops (N, S, S) at full size, int64 labels; `at(size)` gives resized torch copies."""

    train_x: np.ndarray
    train_y: np.ndarray
    val_x: np.ndarray
    val_y: np.ndarray
    label_names: tuple[str, ...]
    notes: list[str] = field(default_factory=list)
    _cache: dict[int, tuple[torch.Tensor, torch.Tensor]] = field(default_factory=dict, repr=False)

    def at(self, size: int) -> tuple[torch.Tensor, torch.Tensor]:
        """(train, val) as uint8 tensors (N, 1, size, size), area-resized; cached per size."""
        if size not in self._cache:
            self._cache[size] = (resize(self.train_x, size), resize(self.val_x, size))
        return self._cache[size]


def resize(images: np.ndarray, size: int) -> torch.Tensor:
    """uint8 (N, S, S) -> uint8 tensor (N, 1, size, size); area interpolation when shrinking."""
    x = torch.from_numpy(np.ascontiguousarray(images)).unsqueeze(1)
    if x.shape[-1] == size and x.shape[-2] == size:
        return x.clone()
    mode = "area" if size < x.shape[-1] else "bilinear"
    out = torch.nn.functional.interpolate(x.float(), size=(size, size), mode=mode)
    return out.round_().clamp_(0, 255).to(torch.uint8)


def load_search_data(data_path: str, *, seed: int = 0, val_fraction: float = 0.1, split_file: str | None = None,
                     subset: int = 0, dataset=None) -> SearchData:
    """Read the dataset (or take `dataset`, a FaceDataset) and split its Training part.

    `subset` > 0 keeps a stratified subset of about that many training images (the validation part is
    never shrunk; a note says how many when rounding per class gives another count). Raises DataError when a
    part would be empty.
    """
    from ..config import TrainConfig
    from ..data import read_dataset, stratified_split
    from ..data.splits import TRAIN, VAL, sample_keys
    from ..train import plan_split

    ds = dataset if dataset is not None else read_dataset(data_path)
    keys = sample_keys(ds.sources, data_path or None)
    roles = plan_split(ds, TrainConfig(seed=seed, val_fraction=val_fraction), keys, split_file)
    fit, val = np.flatnonzero(roles == TRAIN), np.flatnonzero(roles == VAL)
    if len(val) == 0 or len(fit) == 0:
        raise DataError(f"the split leaves {len(fit)} training and {len(val)} validation images: "
                        f"use a larger dataset or another --val-fraction")
    notes = list(getattr(ds, "notes", []))
    if 0 < subset < len(fit):
        _, keep = stratified_split(ds.labels[fit], subset / len(fit), seed)
        fit = fit[keep]
        if len(fit) != subset:  # each class's share is rounded, and every class keeps at least one image
            notes.append(f"--subset {subset}: {len(fit)} training images kept (a stratified subset keeps each class's "
                         "share, rounded, and at least one image of each class that has two or more)")
    return SearchData(train_x=ds.images[fit], train_y=ds.labels[fit].astype(np.int64), val_x=ds.images[val],
                      val_y=ds.labels[val].astype(np.int64), label_names=tuple(ds.label_names), notes=notes)
