"""The `fer` package's row in benchmarks/model_table.py: its own model and preprocessing, measured beside nasfer's.

- Speed: fer's classifier through its own API, `FER.detect_emotions(img, face_rectangles=...)` (fer crops
  each given box, grown by its `offsets`, resizes it to 64x64, scales it and runs its TFLite model one face
  per call; no detector runs), on 48x48 faces, FER2013's crop size, as accuracy_vs_fer.py feeds it: batch 1
  (one face, one image) with fer's TFLite interpreter and OpenCV on one thread, and batch 64 (64 faces in
  one 8x8 grid image) with `threads` (0: all cores). fer creates its `tf.lite.Interpreter` without
  `num_threads` (TFLite's implementation-defined default); here the interpreter is created with the thread
  count and handed to fer through its class-level interpreter cache (`FER._tflite_interpreter_cache`), and
  the row says which settings held and how busy the process was (`cpu_per_wall`). TensorFlow's own
  (intra-/inter-op) thread pools are not used by the TFLite interpreter.
- Size: parameters and multiply-adds of fer's Keras model (data/emotion_model.hdf5, mini-Xception; the
  TFLite model fer runs is its conversion with int8 weights), counted as nasfer's `count_flops` counts
  nasfer's models: convolutions and dense layers, at fer's 64x64 input.
- Accuracy: not re-scored here; taken from benchmarks/results/accuracy_vs_fer.json (same test faces, same
  `offsets`), which the row cites with that file's command.

Everything here needs the `fer` venv (TensorFlow); `layer_multiply_adds` and `fer_accuracy` are pure.
"""

from __future__ import annotations

import json
import os
import warnings
from importlib.metadata import version
from pathlib import Path
from typing import Any, Sequence

import numpy as np

from common import face_grid, import_fer, timeit

ACCURACY_FILE = Path(__file__).resolve().parent / "results" / "accuracy_vs_fer.json"
NO_FER = ("--fer needs the `fer` package, which is not importable here ({exc}); run this script with the python "
          "of the benchmark venv that has fer and nasfer (how to make it: benchmarks/accuracy_vs_fer.py's docstring)")


def require_fer():
    """fer's FER class; SystemExit with one line saying which python to use where `fer` is not importable."""
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")  # TensorFlow's start-up chatter
    try:
        fer_class = import_fer()
    except ImportError as exc:
        raise SystemExit(NO_FER.format(exc=exc)) from None
    import logging

    logging.getLogger("fer").setLevel(logging.WARNING)
    return fer_class


def layer_multiply_adds(kind: str, config: dict[str, Any], in_shape: Sequence[int],
                        out_shape: Sequence[int]) -> int | None:
    """Multiply-adds of one Keras layer on one image, as nasfer's `count_flops` counts (convolutions and dense
    layers only): Conv2D H*W*Cout*kh*kw*Cin/groups; DepthwiseConv2D H*W*Cin*m*kh*kw; SeparableConv2D that
    depthwise part plus the pointwise H*W*Cout*Cin*m; Dense units*inputs per position; BatchNormalization 0
    (folded at inference, as in nasfer's count). Shapes without the batch axis, channels last unless the
    config says `channels_first`. None for a layer kind not known here (the caller reports it)."""
    first = config.get("data_format") == "channels_first"
    cin, cout = (in_shape[0], out_shape[0]) if first else (in_shape[-1], out_shape[-1])
    positions = int(np.prod(out_shape[1:] if first else out_shape[:-1]))
    kh, kw = config.get("kernel_size", (1, 1))
    m = config.get("depth_multiplier", 1)
    if kind == "Conv2D":
        return positions * cout * kh * kw * cin // config.get("groups", 1)
    if kind == "DepthwiseConv2D":
        return positions * cin * m * kh * kw
    if kind == "SeparableConv2D":
        return positions * cin * m * kh * kw + positions * cout * cin * m
    if kind == "Dense":
        return int(np.prod(out_shape[:-1])) * in_shape[-1] * out_shape[-1]
    if kind == "BatchNormalization":
        return 0
    return None


def keras_size(model) -> dict[str, Any]:
    """Parameters (trainable, as nasfer counts torch parameters; Keras' count_params adds batch norm's moving
    statistics) and multiply-adds of a Keras model, or None with the reason where a layer is not countable."""
    params = sum(int(np.prod(w.shape)) for w in model.trainable_weights)
    macs: int | None = 0
    note = f"convolutions and dense layers, one {'x'.join(map(str, model.input_shape[1:3]))} image (fer's input)"
    for layer in model.layers:
        if not layer.weights:
            continue
        n = layer_multiply_adds(type(layer).__name__, layer.get_config(), tuple(layer.input.shape[1:]),
                                tuple(layer.output.shape[1:]))
        if n is None:
            macs, note = None, f"layer {layer.name} ({type(layer).__name__}) is of a kind not counted here"
            break
        macs += n
    return {"params": params, "params_keras_count_params": int(model.count_params()), "flops": macs,
            "flops_note": note}


def fer_accuracy(result: dict[str, Any], split: str, offsets: int) -> dict[str, Any]:
    """fer's accuracy and macro-F1 (fractions) at `offsets` from accuracy_vs_fer.json's content, with its
    command and fer version. ValueError where the file scored another split or not these offsets."""
    if result.get("split") != split:
        raise ValueError(f"it scored split {result.get('split')!r}, not {split!r}")
    entry = result.get(f"fer_offsets_{offsets}") or {}
    if entry.get("accuracy") is None:
        raise ValueError(f"it has no fer score at offsets {offsets} ({entry.get('error') or 'no such entry'})")
    return {"accuracy": entry["accuracy"], "macro_f1": entry["macro_f1"], "undetected": entry.get("undetected"),
            "version": entry.get("version"), "n": result.get("n"), "command": result.get("command")}


class FerClassifier:
    """fer's classifier timed through `detect_emotions(img, face_rectangles=...)`; call with seconds per
    measurement to get {"s1", "s64": median seconds per call, "cpu_per_wall_1", "cpu_per_wall_64"}."""

    def __init__(self, offsets: int, threads: int):
        fer_class = require_fer()
        import cv2
        import fer
        import tensorflow as tf

        self.cv2 = cv2
        gray = np.random.default_rng(0).integers(0, 256, (48, 48), dtype=np.uint8)
        face = cv2.cvtColor(gray, cv2.COLOR_GRAY2BGR)
        self.inputs = {1: face_grid(face, 1, 1, offsets), 64: face_grid(face, 8, 8, offsets)}
        self.threads = {1: 1, 64: threads or os.cpu_count() or 1}
        model = Path(fer.__file__).parent / "data" / "emotion_model_quantized.tflite"
        self.detectors, self.settings = {}, {}
        for batch, n in self.threads.items():
            with warnings.catch_warnings():  # tf.lite.Interpreter's deprecation notice (fer itself uses it)
                warnings.simplefilter("ignore", UserWarning)
                interpreter = tf.lite.Interpreter(model_path=str(model), num_threads=n)
            interpreter.allocate_tensors()
            saved = getattr(fer_class, "_tflite_interpreter_cache", None)
            fer_class._tflite_interpreter_cache = interpreter
            try:
                detector = fer_class(mtcnn=False, offsets=(offsets, offsets))
            finally:
                fer_class._tflite_interpreter_cache = saved
            held = getattr(detector, "_FER__tflite_interpreter", None) is interpreter
            self.detectors[batch] = detector
            self.settings[f"batch_{batch}"] = {"tflite_num_threads": n if held else "fer's default (not settable)",
                                               "opencv_threads": n}

    def __call__(self, seconds: float) -> dict[str, float]:
        out = {}
        for batch, (img, rects) in self.inputs.items():
            detector, before = self.detectors[batch], self.cv2.getNumThreads()
            self.cv2.setNumThreads(self.threads[batch])
            try:
                t = timeit(lambda: detector.detect_emotions(img, face_rectangles=rects), seconds)
            finally:
                self.cv2.setNumThreads(before)
            out[f"s{batch}"], out[f"cpu_per_wall_{batch}"] = t["median_s"], t["cpu_per_wall"]
        return out


def describe_fer(split: str, offsets: int, accuracy_file: Path, settings: dict[str, Any]) -> dict[str, Any]:
    """The fer row's fixed part (as model_table.describe gives for a nasfer model). SystemExit where the
    accuracy file cannot give fer's score for `split` at `offsets`."""
    import fer
    import keras

    try:
        scores = fer_accuracy(json.loads(Path(accuracy_file).read_text()), split, offsets)
    except (OSError, ValueError) as exc:
        raise SystemExit(f"--fer: cannot take fer's accuracy from {accuracy_file}: {exc}") from None
    installed = version("fer")
    data = Path(fer.__file__).parent / "data"
    size = keras_size(keras.models.load_model(str(data / "emotion_model.hdf5"), compile=False))
    return {
        "model": "fer/data/emotion_model_quantized.tflite", "name": f"fer {installed}", "package": "fer",
        "architecture": "mini-Xception (Arriaga et al. 2017, arXiv:1710.07557), Keras -> TFLite", **size,
        "quantization": "int8 weights (TFLite)", "builtin_tta": None, "split": split,
        "accuracy": scores["accuracy"], "macro_f1": scores["macro_f1"],
        "accuracy_source": {"file": "benchmarks/results/accuracy_vs_fer.json", "entry": f"fer_offsets_{offsets}",
                            "command": scores["command"], "fer_version": scores["version"], "faces": scores["n"],
                            "no_result_for": scores["undetected"]},
        **({"warning": f"accuracy scored with fer {scores['version']}, speed measured with fer {installed}"}
           if scores["version"] != installed else {}),
        "offsets": [offsets, offsets],
        "measured_through": "FER(mtcnn=False, offsets).detect_emotions(img, face_rectangles=boxes) on 48x48 faces: "
                            "fer's crop, resize to 64x64, scaling and TFLite model, one face per invoke()",
        "thread_settings": settings,
        "threads_note": "fer's interpreter is a tf.lite.Interpreter (XNNPACK delegate) created here with num_threads "
                        "as given and handed to fer via FER._tflite_interpreter_cache (fer itself leaves num_threads "
                        "unset: TFLite's default); OpenCV threads set alike during each measurement; TensorFlow's "
                        "intra-/inter-op thread pools are not used by the TFLite interpreter",
    }
