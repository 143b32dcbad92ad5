"""Export a training checkpoint to ONNX (softmax inside), check it against PyTorch, write its model card.

The .onnx is kept only if ONNX Runtime and PyTorch agree to within --atol in probability. The card
(same stem, .json) holds labels, preprocessing, SHA-256, size, training recipe and limitations.

Examples:
  nasfer export --checkpoint runs/vgg/best.pt --out models/vgg.onnx
  nasfer export --checkpoint runs/nas/best.pt --out models/nas.onnx --parity-data fer2013.zip
  nasfer evaluate --data fer2013.zip --model models/vgg.onnx --json eval.json
  nasfer export --out models/vgg.onnx --metrics eval.json --metrics-split PublicTest   # card only
"""

from __future__ import annotations

import argparse

from .. import config
from ..export import ExportConfig

NAME = "export"
HELP = "checkpoint -> ONNX + model card, with an ONNX Runtime vs PyTorch parity check"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    config.add_arguments(parser, ExportConfig)


def run(args: argparse.Namespace) -> int:
    from ..export import export_checkpoint

    result = export_checkpoint(config.from_args(ExportConfig, args))
    if result.max_abs_diff is None:
        print(f"{result.card_path}: metrics {', '.join(result.card['metrics'])} stored")
        return 0
    arch = result.card["architecture"]
    print(f"{result.onnx}: {arch['name']}, {arch['params']:,} parameters, {arch['flops'] / 1e6:.1f} M multiply-adds, "
          f"labels {', '.join(result.card['labels'])}; ONNX Runtime matches PyTorch to {result.max_abs_diff:.1e}")
    print(f"{result.card_path}: model card")
    return 0
