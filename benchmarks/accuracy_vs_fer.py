"""Accuracy of nasfer's model and of the `fer` package on the same FER2013 test images, in one run.

Both classify the pre-cropped 48x48 faces (the whole image is the face box, no detector), so the
comparison is of the classifiers alone. `fer` is not a nasfer dependency: run this script with the
Python of an environment that has both installed, e.g.

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

import numpy as np

from common import write_result


def score_nasfer(images: np.ndarray, model: str | None, tta: bool) -> tuple[np.ndarray, float]:
    from nasfer.engine import Classifier

    clf = Classifier(model)
    started = time.perf_counter()
    probs = clf.predict(images)
    if tta:
        probs = 0.5 * (probs + clf.predict(images[:, :, ::-1].copy()))
    return probs, time.perf_counter() - started


def score_fer(images: np.ndarray) -> tuple[np.ndarray, float, str]:
    import logging

    import cv2

    try:
        from fer import FER
    except ImportError:  # fer 25.x no longer re-exports FER from the package
        from fer.fer import FER

    logging.getLogger("fer").setLevel(logging.WARNING)
    # offsets=(0, 0): classify exactly the given crop. fer's default (10, 10) grows the box by 10 px a side,
    # which on a 48 px face adds a flat border the model never saw and costs it ~15 points of accuracy.
    detector = FER(mtcnn=False, offsets=(0, 0))
    labels = ("angry", "disgust", "fear", "happy", "sad", "surprise", "neutral")
    out = np.zeros((len(images), len(labels)), dtype=np.float32)
    started = time.perf_counter()
    for i, gray in enumerate(images):
        bgr = cv2.cvtColor(gray, cv2.COLOR_GRAY2BGR)
        result = detector.detect_emotions(bgr, face_rectangles=[(0, 0, gray.shape[1], gray.shape[0])])
        if result:
            out[i] = [result[0]["emotions"][name] for name in labels]
    import fer

    return out, time.perf_counter() - started, getattr(fer, "__version__", "unknown")


def main() -> None:
    from nasfer.data import read_dataset
    from nasfer.metrics import classification_report

    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", default="../shared/datasets/fer2013.zip")
    parser.add_argument("--split", default="PublicTest")
    parser.add_argument("--model", default=None, help="nasfer .onnx (default: the shipped model)")
    parser.add_argument("--out", default="benchmarks/results/accuracy_vs_fer.json")
    args = parser.parse_args()

    data = read_dataset(args.data).select_split(args.split)
    names = list(data.label_names)
    result: dict = {"benchmark": "accuracy_vs_fer", "data": Path(args.data).name, "split": args.split,
                    "n": len(data), "protocol": "pre-cropped 48x48 test faces, whole image as the face box"}
    for tta in (False, True):
        probs, seconds = score_nasfer(data.images, args.model, tta)
        report = classification_report(data.labels, probs, names)
        key = "nasfer_tta" if tta else "nasfer"
        result[key] = {"accuracy": report["accuracy"], "macro_f1": report["macro_f1"],
                       "per_class_f1": {k: v["f1"] for k, v in report["per_class"].items()},
                       "seconds": round(seconds, 3)}
        print(f"{key:12s} accuracy {report['accuracy']:.4f}  macro-F1 {report['macro_f1']:.4f}")
    try:
        probs, seconds, version = score_fer(data.images)
    except ImportError as exc:
        result["fer"] = {"error": f"fer package not importable here ({exc}); see this script's docstring"}
    else:
        report = classification_report(data.labels, probs, names)
        result["fer"] = {"version": version, "accuracy": report["accuracy"], "macro_f1": report["macro_f1"],
                         "per_class_f1": {k: v["f1"] for k, v in report["per_class"].items()},
                         "seconds": round(seconds, 3)}
        print(f"{'fer ' + version:12s} accuracy {report['accuracy']:.4f}  macro-F1 {report['macro_f1']:.4f}")
    write_result(result, args.out)


if __name__ == "__main__":
    main()
