"""Train a model on a face dataset; an existing --out directory is resumed where it stopped.

Examples:
  nasfer train --data fer2013.zip --arch vgg --preset fast --out runs/vgg
  nasfer train --data fer2013.zip --genotype runs/search/best_arch.json --out runs/nas
  nasfer train --data fer2013.zip --arch vgg --preset paper --out runs/paper   # the original recipe

Data-parallel, one process per CPU socket or GPU (the global --batch-size is split between them):
  torchrun --standalone --nproc_per_node 2 -m nasfer train --data fer2013.zip --out runs/vgg-ddp

Your own data (see docs/custom-data.md):
  nasfer train --data my_faces/ --label-set folders --init-from default --out runs/mine
      # fine-tune the shipped model on <class>/<image> folders, new labels; epochs, batch and lr from the data size
  nasfer train --data fer2013.zip --width 16 --teacher default --out runs/student   # distil from the default
  nasfer train --data my_faces/ ... --split-file runs/mine/splits.json --out runs/mine-again   # same split
"""

from __future__ import annotations

import argparse

from .. import config
from ..config import DataConfig, TrainConfig, from_args

NAME = "train"
HELP = "train a registered model or a genotype (checkpoints every epoch, resumable)"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    config.add_arguments(parser, DataConfig)
    config.add_arguments(parser, TrainConfig)


def run(args: argparse.Namespace) -> int:
    from ..distributed import is_main_process
    from ..errors import DataError
    from ..train import fit

    data_cfg = from_args(DataConfig, args)
    if not data_cfg.data:
        raise DataError("--data is required (a dataset zip, folder or fer2013.csv)")
    out = fit(from_args(TrainConfig, args), data_cfg)
    if is_main_process():
        print(f"run directory: {out} (best.pt = best validation accuracy; export it with `nasfer export`; "
              f"splits.json = the split, reusable with --split-file)")
    return 0
