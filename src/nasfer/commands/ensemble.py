"""Combine trained checkpoints into one ensemble checkpoint (mean of their probabilities).

Example:
  nasfer ensemble --checkpoints runs/a/best.pt runs/b/best.pt --out runs/ensemble.pt
  nasfer export --checkpoint runs/ensemble.pt --out model.onnx     # one ONNX graph
"""

from __future__ import annotations

import argparse
from dataclasses import dataclass

from ..config import add_arguments as add_config_arguments
from ..config import from_args, option

NAME = "ensemble"
HELP = "average several trained checkpoints into one model (exports as a single ONNX graph)"


@dataclass
class EnsembleConfig:
    checkpoints: list[str] = option([], "two or more training checkpoints (.pt) with the same labels")
    out: str = option("ensemble.pt", "checkpoint file to write")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    add_config_arguments(parser, EnsembleConfig)


def run(args: argparse.Namespace) -> int:
    from ..checkpoint import save_checkpoint
    from ..models.ensemble import ensemble_checkpoint

    cfg = from_args(EnsembleConfig, args)
    if len(cfg.checkpoints) < 2:
        raise ValueError("--checkpoints needs at least two files")
    save_checkpoint(cfg.out, ensemble_checkpoint(cfg.checkpoints))
    print(f"{cfg.out}: ensemble of {len(cfg.checkpoints)} models")
    return 0
