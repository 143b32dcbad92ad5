"""Score a model on a labelled face dataset: accuracy, macro-F1, per-class scores, confusion, ROC AUC, calibration.

Examples:
  nasfer evaluate --data fer2013.zip                          # the shipped model on PublicTest
  nasfer evaluate --data fer2013.zip --split PrivateTest --model runs/vgg/model.onnx --tta
  nasfer evaluate --data fer2013.csv --model runs/vgg/best.pt --json report.json --plots figures/
  nasfer evaluate --data CK+48.zip --contempt neutral --json -  # JSON on stdout (progress stays on stderr)
  nasfer evaluate --data fer2013.zip --model runs/vgg/best.pt --ten-crop   # ten-crop TTA
  nasfer evaluate --data fer2013.zip --split PublicTest --model model.onnx --record   # once per released model

Protocol: select models on the validation split (--split-file RUN/splits.json --split val); score a
released model on PublicTest once, with --record, which stores the score, date and command in its card
and refuses to replace an existing one without --overwrite-record. --tta/--ten-crop are refused where the
model's graph already does that TTA (its card says so).

Dataset labels are matched to the model's labels by name; CK+ 'contempt' is left out unless
--contempt neutral, and the report always says which. Unreadable images are skipped and counted
(--strict fails instead).
"""

from __future__ import annotations

import argparse
import sys

from .. import config

NAME = "evaluate"
HELP = "score a model (.onnx, .pt or the shipped default) on a dataset split; JSON report and plots"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    from ..evaluate import EvalConfig

    config.add_arguments(parser, EvalConfig)


def run(args: argparse.Namespace) -> int:
    from ..evaluate import EvalConfig, evaluate, format_summary, to_json

    cfg = config.from_args(EvalConfig, args).validate()
    report = evaluate(cfg, progress=sys.stderr.isatty(), log=lambda msg: print(msg, file=sys.stderr))
    if cfg.json == "-":
        sys.stdout.write(to_json(report) + "\n")
    else:
        print(format_summary(report))
    return 0
