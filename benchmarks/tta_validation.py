"""Test-time augmentation on the VALIDATION split: no TTA vs flip vs ten-crop, per model (selection data only).

The validation split is the one `nasfer train` holds out of FER2013 Training (seed, val-fraction as
given, or a run's splits.json), drawn by `nasfer.quantize.split_images`; PublicTest is never read.
Each model is scored with `nasfer.evaluate.predict_batches` for every TTA its graph does not already
do (`nasfer.tta.tta_plan`). Usage:

    python benchmarks/tta_validation.py src/nasfer/weights/fast.onnx src/nasfer/weights/default.pt \
        [--data ../shared/datasets/fer2013.zip] [--out benchmarks/results/tta_validation.json]
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

from common import write_result


def main() -> None:
    from nasfer.errors import ModelError
    from nasfer.evaluate import load_model
    from nasfer.metrics import classification_report
    from nasfer.quantize import split_images
    from nasfer.tta import predict_batches, tta_plan

    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("models", nargs="+", help=".onnx, .pt or a shipped model's name")
    parser.add_argument("--data", default="../shared/datasets/fer2013.zip")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--val-fraction", type=float, default=0.1)
    parser.add_argument("--split-file", default=None)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--out", default="benchmarks/results/tta_validation.json")
    args = parser.parse_args()
    rows = []
    for name in args.models:
        model = load_model(name, args.threads)
        data = split_images(args.data, model.labels, model.preprocessing.size, n_calibration=1, seed=args.seed,
                            val_fraction=args.val_fraction, split_file=args.split_file,
                            training=model.training)  # a --detect-faces model scores on face crops
        row = {"model": str(name), "name": model.name, "builtin_tta": model.builtin_tta, "n": int(len(data.validation)),
               "split": data.split, "scores": {}}
        for flip, ten in ((False, False), (True, False), (False, True)):
            try:
                kind, _ = tta_plan(model, flip, ten)
            except ModelError as exc:  # a TTA the graph already does: reported, not scored
                row["scores"]["ten-crop" if ten else "flip" if flip else "none"] = {"skipped": str(exc)}
                continue
            started = time.perf_counter()
            probs = predict_batches(model.predict, data.validation, 256, kind)
            report = classification_report(data.validation_labels, probs, model.labels)
            label = "ten-crop" if ten else "flip" if flip else "none"
            row["scores"][label] = {"accuracy": report["accuracy"], "macro_f1": report["macro_f1"],
                                    "seconds": round(time.perf_counter() - started, 2)}
            print(f"{model.name:24s} {label:9s} val accuracy {report['accuracy']:.4f}  macro-F1 {report['macro_f1']:.4f}")
        rows.append(row)
    write_result({"benchmark": "tta_validation", "data": Path(args.data).name, "models": rows,
                  "command": "python benchmarks/tta_validation.py " + " ".join(sys.argv[1:])}, args.out)


if __name__ == "__main__":
    main()
