"""Export a training checkpoint to ONNX (softmax inside), check it against PyTorch, write its model card.

The .onnx is kept only if ONNX Runtime and PyTorch agree to within --atol in probability. The card
(same stem, .json) holds labels, preprocessing, SHA-256, size, training recipe and limitations.

Examples:
  nasfer export --checkpoint runs/vgg/best.pt --out models/vgg.onnx
  nasfer export --checkpoint runs/nas/best.pt --out models/nas.onnx --parity-data fer2013.zip
  nasfer evaluate --data fer2013.zip --model models/vgg.onnx --json eval.json
  nasfer export --out models/vgg.onnx --metrics eval.json --metrics-split PublicTest   # card only
  nasfer export --checkpoint runs/vgg/best.pt --out models/vgg.onnx --ten-crop   # ten-crop TTA in the graph
  nasfer export --onnx models/vgg.onnx --quantize int8 --calibration-data fer2013.zip --out models/vgg-int8.onnx

--quantize int8 is static quantization (ONNX Runtime, QDQ, per-channel int8 weights, uint8 activations)
calibrated on training images of --calibration-data; it is refused, and nothing written, when accuracy on
that dataset's validation split (the training run's: --split-file or --seed/--val-fraction) drops by more
than --max-accuracy-drop points.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from .. import config
from ..export import ExportConfig

NAME = "export"
HELP = "checkpoint -> ONNX + model card, with an ONNX Runtime vs PyTorch parity check"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    config.add_arguments(parser, ExportConfig)


def run(args: argparse.Namespace) -> int:
    from ..export import export_checkpoint

    result = export_checkpoint(config.from_args(ExportConfig, args).validate())
    quant = result.card.get("quantization")
    if quant:
        parity = quant["parity"]
        print(f"{result.onnx}: int8 ({result.onnx.stat().st_size / 2**20:.1f} MB) from {quant['source']['file']}; "
              f"validation accuracy {100 * parity['int8_accuracy']:.2f}% vs {100 * parity['fp32_accuracy']:.2f}% "
              f"fp32 on {parity['n']} validation images (drop {parity['accuracy_drop_points']:.2f} points, allowed "
              f"{parity['max_drop_points']:.2f})")
        print(f"{result.card_path}: model card (no test score yet: `nasfer evaluate --data DATA --split SPLIT "
              f"--model {result.onnx.name} --record` scores it once, on the test split: PublicTest for FER2013)")
        return 0
    if result.max_abs_diff is None:
        print(f"{result.card_path}: metrics {', '.join(result.card['metrics'])} stored")
        return 0
    arch = result.card["architecture"]
    print(f"{result.onnx}: {arch['name']}, {arch['params']:,} parameters, {arch['flops'] / 1e6:.1f} M multiply-adds, "
          f"labels {', '.join(result.card['labels'])}; ONNX Runtime matches PyTorch to {result.max_abs_diff:.1e}")
    print(f"{result.card_path}: model card")
    train = ((result.card.get("training") or {}).get("config") or {}).get("train") or {}
    if train.get("tta") and not result.card["onnx"].get("tta"):
        held_out = args.checkpoint and (Path(args.checkpoint).parent / "test.json").is_file()  # no official test split
        print(f"note: the run scored {'validation and test.json' if held_out else 'its validation images'} with flip "
              "TTA; this graph classifies each face once (--tta builds the flip into the graph: those scores, at "
              "twice the compute)")
    return 0
