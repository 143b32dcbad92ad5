"""int8 against fp32 on this machine's CPU: validation accuracy of each and how often they agree.

    python benchmarks/int8_agreement.py --data ../shared/datasets/fer2013.zip \
        --split-file benchmarks/campaigns/issue11/splits.json \
        --pairs FP32.onnx=INT8.onnx [FP32.onnx=INT8.onnx ...] --out benchmarks/results/int8_agreement_avx2.json

An int8 graph is one file, but ONNX Runtime computes it with kernels chosen by the CPU: with VNNI
(AVX-512 VNNI, AVX-VNNI) u8 x s8 products are summed in int32; without (AVX2 only) pairs of them are
summed in int16 first (VPMADDUBSW), which saturates when the weights use the full int8 range. This script
runs each pair through the engine on the VALIDATION images of `--split-file` (the ones the models were
selected on; never a test split) and records the CPU's flags with the figures, so a result says on which
kind of CPU it holds. Writes JSON (`benchmarks/common.write_result`).
"""

from __future__ import annotations

import argparse
import platform
import sys
from pathlib import Path

import numpy as np

from common import write_result

VNNI_FLAGS = ("avx512_vnni", "avx_vnni", "amx_int8")


def compare(fp32: Path, int8: Path, images: np.ndarray, labels: np.ndarray) -> dict:
    """Accuracy of each model and their top-1 agreement on `images` (uint8 N x S x S) with `labels`."""
    from nasfer.runtime.engine import Classifier

    p32, p8 = Classifier(fp32, threads=1).predict(images), Classifier(int8, threads=1).predict(images)
    return {"fp32": str(fp32), "int8": str(int8), "n": int(len(labels)),
            "fp32_accuracy": round(float((p32.argmax(1) == labels).mean()), 4),
            "int8_accuracy": round(float((p8.argmax(1) == labels).mean()), 4),
            "top1_agreement": round(float((p32.argmax(1) == p8.argmax(1)).mean()), 4),
            "max_abs_prob_diff": round(float(np.abs(p32 - p8).max()), 4)}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", required=True, help="the dataset the models were trained on")
    parser.add_argument("--split-file", required=True, help="the splits.json whose validation role the models held out")
    parser.add_argument("--pairs", nargs="+", required=True, metavar="FP32=INT8", help="an fp32 graph and its int8 graph")
    parser.add_argument("--out", required=True, help="result JSON")
    args = parser.parse_args(argv)
    from nasfer.quantize import split_images
    from nasfer.runtime.engine import read_card
    from nasfer.training.precision import cpu_flags

    pairs = []
    for text in args.pairs:
        fp32, sep, int8 = text.partition("=")
        if not sep or not Path(fp32).is_file() or not Path(int8).is_file():
            raise SystemExit(f"--pairs {text}: write FP32.onnx=INT8.onnx, both existing files")
        pairs.append((Path(fp32), Path(int8)))
    rows = []
    for fp32, int8 in pairs:
        card = read_card(fp32)
        size = int(card["preprocessing"].get("size", 48))
        data = split_images(args.data, tuple(card["labels"]), size, n_calibration=1, seed=0, val_fraction=0.1,
                            split_file=args.split_file, training=(card.get("training") or {}).get("config"))
        rows.append(compare(fp32, int8, data.validation, data.validation_labels))
        print(f"{int8.name}: agreement {rows[-1]['top1_agreement']:.4f}, accuracy int8 {rows[-1]['int8_accuracy']:.4f} "
              f"fp32 {rows[-1]['fp32_accuracy']:.4f}", flush=True)
    flags = cpu_flags()
    import onnxruntime

    write_result({"benchmark": "int8_agreement", "command": "python benchmarks/int8_agreement.py " + " ".join(
        sys.argv[1:] if argv is None else argv), "split": "validation", "machine": platform.platform(),
        "onnxruntime": onnxruntime.__version__, "cpu_vnni_flags": sorted(flags & set(VNNI_FLAGS)),
        "cpu_avx2": "avx2" in flags, "results": rows}, args.out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
