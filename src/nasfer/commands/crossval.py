"""Subject-independent k-fold cross-validation (the CK+ protocol), each fold an ordinary training run.

Subjects come from the file names (CK+: S005_001_00000011.png -> S005; change with --group-regex);
a fold's test images never share a person with its training or validation images, and every image
is tested exactly once. Writes crossval.json (per-fold and mean/std accuracy and macro-F1, pooled
report and confusion), confusion.png, folds.json and one run directory per fold (resumable).

Examples:
  nasfer crossval --data CK+48 --label-set folders --folds 10 --out runs/ck-cv
  nasfer crossval --data CK+48 --label-set folders --folds 10 --init-from default --out runs/ck-finetune-cv
      # fine-tune the shipped model in every fold; epochs, batch and lr follow the fold's size
  nasfer crossval --data faces/ --group-regex '^([a-z]+)-' --folds 5 --out runs/cv   # anna-03.png -> subject anna
"""

from __future__ import annotations

import argparse
import shlex
import sys

from .. import config
from ..config import DataConfig, TrainConfig, from_args

NAME = "crossval"
HELP = "subject-independent k-fold cross-validation (CK+ protocol), optionally fine-tuning a checkpoint"

#: Training flags that make no sense per fold: the folds decide the test part and the split (--limit too).
EXCLUDED = ("out", "test_fraction", "split_file", "limit")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    from ..crossval import CrossvalConfig

    config.add_arguments(parser, DataConfig)
    config.add_arguments(parser, CrossvalConfig)
    config.add_arguments(parser, TrainConfig, exclude=EXCLUDED)


def run(args: argparse.Namespace) -> int:
    from ..crossval import CrossvalConfig, run_crossval
    from ..errors import DataError

    import os

    if int(os.environ.get("WORLD_SIZE", "1")) > 1:
        raise ValueError("crossval trains its folds one after another in one process; run it without torchrun "
                         "(data-parallel runs are for `nasfer train`)")
    data_cfg = from_args(DataConfig, args)
    if not data_cfg.data:
        raise DataError("--data is required (a CK+-style folder or zip: <class>/S005_001_00000011.png ...)")
    command = "nasfer " + " ".join(shlex.quote(a) for a in sys.argv[1:]) if sys.argv[1:2] == ["crossval"] else None
    run_crossval(from_args(CrossvalConfig, args), from_args(TrainConfig, args), data_cfg, command=command)
    return 0
