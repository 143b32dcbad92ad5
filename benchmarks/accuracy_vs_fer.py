"""Accuracy of nasfer's model and of the `fer` package on the same FER2013 test images, in one run.

Both classify the pre-cropped 48x48 faces (the whole image is the face box, no detector), so the
comparison is of the classifiers alone. nasfer's model runs as released: one call per face, with
whatever TTA its graph has built in (its card says which), so its figures equal its card's.
`fer` runs once per `--fer-offsets` value: `offsets=(0, 0)` classifies exactly the given crop; fer's
default (10, 10) grows the box by 10 px a side, which on a 48 px face adds a border the model never saw.
A face `fer` returns no result for is counted (`undetected`) and scored as a wrong answer, never as a
class; `accuracy_detected_only` gives the rest for reference.

`fer` is not a nasfer dependency: run this script with the Python of an environment that has both, e.g.

    python -m venv /tmp/ferenv && /tmp/ferenv/bin/pip install --no-deps fer && \
      /tmp/ferenv/bin/pip install tensorflow-cpu opencv-contrib-python-headless pandas requests "moviepy<2" \
      ffmpeg-python matplotlib setuptools onnxruntime tqdm && /tmp/ferenv/bin/pip install --no-deps -e .
    /tmp/ferenv/bin/python benchmarks/accuracy_vs_fer.py --data ../shared/datasets/fer2013.zip

(`fer`'s own requirements pull facenet-pytorch and a CUDA torch build; only its TensorFlow Lite
classifier is needed here.) Without `fer` the script still scores nasfer and says so in the JSON.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path
from typing import Any, Sequence

import numpy as np

from common import write_result

LABELS = ("angry", "disgust", "fear", "happy", "sad", "surprise", "neutral")


def score_nasfer(images: np.ndarray, model: str | None, threads: int) -> tuple[np.ndarray, float, dict[str, Any]]:
    """Probabilities (N, K) of the model as released (one call per face), seconds, and what the card says."""
    from nasfer.runtime.engine import Classifier
    from nasfer.tta import builtin_tta

    clf = Classifier(model, threads=threads or None)
    started = time.perf_counter()
    probs = clf.predict(images)
    card = clf.card
    about = {"name": card.get("name"), "file": str(clf.model_path), "builtin_tta": builtin_tta(card),
             "quantization": (card.get("quantization") or {}).get("format"), "sha256": card["onnx"].get("sha256")}
    return probs, time.perf_counter() - started, about


def score_fer(images: np.ndarray, offset: int) -> tuple[np.ndarray, np.ndarray, float, str]:
    """`fer`'s probabilities (N, K) in LABELS order, mask of faces it returned a result for, seconds, version."""
    import logging

    import cv2

    try:
        from fer import FER
    except ImportError:  # fer 25.x no longer re-exports FER from the package
        from fer.fer import FER
    import fer

    logging.getLogger("fer").setLevel(logging.WARNING)
    detector = FER(mtcnn=False, offsets=(offset, offset))
    out = np.zeros((len(images), len(LABELS)), dtype=np.float32)
    found = np.zeros(len(images), dtype=bool)
    started = time.perf_counter()
    for i, gray in enumerate(images):
        bgr = cv2.cvtColor(gray, cv2.COLOR_GRAY2BGR)
        result = detector.detect_emotions(bgr, face_rectangles=[(0, 0, gray.shape[1], gray.shape[0])])
        if result:
            out[i] = [result[0]["emotions"][name] for name in LABELS]
            found[i] = True
    return out, found, time.perf_counter() - started, getattr(fer, "__version__", "unknown")


def peer_scores(y_true: np.ndarray, probs: np.ndarray, found: np.ndarray, names: Sequence[str]) -> dict[str, Any]:
    """Accuracy and macro-F1 where a face without a result is a wrong answer (an extra 'no result' column).

    y_true int (N,), probs (N, K), found bool (N,). macro-F1 averages the K real classes.
    """
    from nasfer.metrics import confusion_matrix, macro_average, per_class_scores

    k = len(names)
    y_pred = np.where(found, probs.argmax(1), k)
    cm = confusion_matrix(y_true, y_pred, k + 1)
    scores = per_class_scores(cm)
    return {"accuracy": float(np.mean(y_pred == y_true)),
            "macro_f1": macro_average(scores["f1"][:k], scores["support"][:k]),
            "per_class_f1": {name: float(scores["f1"][i]) for i, name in enumerate(names)},
            "undetected": int((~found).sum()),
            "accuracy_detected_only": float(np.mean(y_pred[found] == y_true[found])) if found.any() else None}


def main() -> None:
    from nasfer.data import read_dataset
    from nasfer.metrics import classification_report

    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", default="../shared/datasets/fer2013.zip")
    parser.add_argument("--split", default="PublicTest")
    parser.add_argument("--model", default=None, help="nasfer .onnx or shipped name (default: the shipped default)")
    parser.add_argument("--fer-offsets", type=int, nargs="*", default=[0, 10],
                        help="run `fer` once per value of its `offsets` (pixels added to each side of the face "
                             "box; 10 is fer's default); none: skip fer")
    parser.add_argument("--threads", type=int, default=1, help="ONNX Runtime threads for nasfer (0: all cores)")
    parser.add_argument("--out", default="benchmarks/results/accuracy_vs_fer.json")
    args = parser.parse_args()

    data = read_dataset(args.data).select_split(args.split)
    names = list(data.label_names)
    if tuple(names) != LABELS:
        raise SystemExit(f"expected the FER2013 labels {LABELS}, got {names}")
    result: dict = {"benchmark": "accuracy_vs_fer", "data": Path(args.data).name, "split": args.split,
                    "n": len(data), "protocol": "pre-cropped 48x48 test faces, whole image as the face box",
                    "command": "python benchmarks/accuracy_vs_fer.py " + " ".join(
                        f"--{k.replace('_', '-')} {' '.join(map(str, v)) if isinstance(v, list) else v}"
                        for k, v in vars(args).items() if v is not None)}
    probs, seconds, about = score_nasfer(data.images, args.model, args.threads)
    report = classification_report(data.labels, probs, names)
    result["nasfer"] = {**about, "accuracy": report["accuracy"], "macro_f1": report["macro_f1"],
                        "per_class_f1": {k: v["f1"] for k, v in report["per_class"].items()},
                        "seconds": round(seconds, 3)}
    print(f"{'nasfer':16s} accuracy {report['accuracy']:.4f}  macro-F1 {report['macro_f1']:.4f}")
    for offset in args.fer_offsets:
        key = f"fer_offsets_{offset}"
        try:
            fer_probs, found, seconds, version = score_fer(data.images, offset)
        except ImportError as exc:
            result[key] = {"error": f"fer package not importable here ({exc}); see this script's docstring"}
            continue
        scores = peer_scores(data.labels, fer_probs, found, names)
        result[key] = {"version": version, "offsets": [offset, offset], **scores, "seconds": round(seconds, 3)}
        print(f"{'fer ' + version + ' +' + str(offset) + 'px':16s} accuracy {scores['accuracy']:.4f}  "
              f"macro-F1 {scores['macro_f1']:.4f}  no result for {scores['undetected']} faces")
    write_result(result, args.out)


if __name__ == "__main__":
    main()
