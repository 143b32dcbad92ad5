"""ONNX Runtime classifier: face crops in, emotion probabilities out, with no torch in the process.

The model card beside the .onnx (same stem, .json) says what the model expects (labels,
preprocessing, tensor names), so the engine never guesses; the card's SHA-256 of the .onnx is
checked on load, so a card can never describe another model than the one that runs.
"""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path
from typing import Any

import numpy as np

from ..errors import ModelError
from ..preprocessing import Preprocessing, normalize

CARD_FORMAT = "nasfer-model-card/1"


def check_threads(value: Any, name: str = "threads") -> int | None:
    """The one validation of an ONNX Runtime thread count given in Python (the CLI's flags have theirs in
    `nasfer.validation.threads_check`): None or 0 mean ONNX Runtime's default (all cores); otherwise an integer
    1..MAX_THREADS. Returns None or the count; ValueError naming `name` otherwise (a huge count would make
    ONNX Runtime try to create that many threads and exhaust memory)."""
    from ..validation import MAX_THREADS

    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or not 0 <= value <= MAX_THREADS:
        raise ValueError(f"{name} must be an integer 0..{MAX_THREADS} (0 or None: all cores), got {value!r}")
    return int(value) or None
#: Suffixes of training checkpoints (torch), which the runtime does not run.
CHECKPOINT_SUFFIXES = (".pt", ".pth", ".ckpt")


def card_path(model_path: str | os.PathLike) -> Path:
    """`model.onnx` -> `model.json`."""
    return Path(model_path).with_suffix(".json")


def sha256_file(path: str | os.PathLike) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def read_card(model_path: str | os.PathLike, verify: bool = True) -> dict[str, Any]:
    """The validated model card of `model_path` (ModelError naming the problem otherwise)."""
    path = card_path(model_path)
    if not path.is_file():
        raise ModelError(f"{path}: model card not found (export writes it beside the .onnx)")
    try:
        card = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ModelError(f"{path}: not a readable model card ({exc})") from None
    if not isinstance(card, dict) or card.get("format") != CARD_FORMAT:
        raise ModelError(f"{path}: not a nasfer model card (expected format {CARD_FORMAT!r})")
    labels = card.get("labels")
    if not isinstance(labels, list) or not labels or not all(isinstance(x, str) for x in labels):
        raise ModelError(f"{path}: 'labels' must be a non-empty list of names")
    if not isinstance(card.get("preprocessing"), dict):
        raise ModelError(f"{path}: 'preprocessing' is missing")
    expected = (card.get("onnx") or {}).get("sha256")
    if verify and expected and sha256_file(model_path) != expected:
        raise ModelError(f"{model_path}: the file does not match the SHA-256 in its card {path.name} "
                         "(re-export the model, or restore the matching pair)")
    return card


class Classifier:
    """Batched emotion classifier over uint8 face crops, on ONNX Runtime's CPU provider.

    Thread-safe: `predict` may be called from several threads at once (ONNX Runtime's
    InferenceSession.run is; nothing else here changes after construction).

    model_path: the .onnx, or a shipped model's name (default: the shipped default). threads: intra-op threads (None: ONNX
    Runtime's default, all cores, as is 0; a server with several workers wants 1; ValueError for anything but
    an integer 0..1024). max_batch: crops per
    run; bigger inputs are split so memory stays bounded. spin: whether ONNX Runtime's idle intra-op threads
    busy-wait for the next run (its default; fastest for back-to-back batches). `EmotionRecognizer` turns it
    off: between its detections the spinning threads take the cores OpenCV's detector runs on (measured in a
    detect + classify loop on a 640x480 photo, 2 cores: YuNet detection 14 -> 20 ms, Haar 43 -> 58 ms).
    """

    def __init__(self, model_path: str | os.PathLike | None = None, threads: int | None = None,
                 max_batch: int = 64, spin: bool = True):
        from ..weights import resolve_model

        self.model_path = resolve_model(model_path)
        if self.model_path.suffix.lower() in CHECKPOINT_SUFFIXES:
            raise ModelError(f"{self.model_path} is a training checkpoint; the runtime runs exported .onnx models "
                             f"(no torch needed): nasfer export --checkpoint {self.model_path} --out model.onnx, "
                             "then use model.onnx")
        if self.model_path.suffix.lower() != ".onnx":
            raise ModelError(f"{self.model_path}: not an .onnx model (the runtime runs models exported by "
                             "`nasfer export`: a .onnx file with its .json card beside it)")
        self.card = read_card(self.model_path)
        self.labels: tuple[str, ...] = tuple(self.card["labels"])
        self.preprocessing = Preprocessing.from_dict(self.card["preprocessing"])
        self.max_batch = max(1, int(max_batch))
        self.session = self._session(check_threads(threads), spin)
        io = self.card.get("onnx") or {}
        self.input_name = io.get("input", "input")
        self.output_name = io.get("output", "probs")
        self._check_io()

    def _session(self, threads: int | None, spin: bool = True):
        import onnxruntime as ort

        options = ort.SessionOptions()
        options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        options.inter_op_num_threads = 1
        if threads:
            options.intra_op_num_threads = int(threads)
        options.log_severity_level = 3
        if not spin:
            options.add_session_config_entry("session.intra_op.allow_spinning", "0")
        try:
            return ort.InferenceSession(str(self.model_path), options, providers=["CPUExecutionProvider"])
        except Exception as exc:  # onnxruntime raises its own exception types
            raise ModelError(f"{self.model_path}: ONNX Runtime cannot load it ({str(exc).strip()[:300]})") from None

    def _check_io(self) -> None:
        inputs = {i.name: i for i in self.session.get_inputs()}
        outputs = {o.name: o for o in self.session.get_outputs()}
        if self.input_name not in inputs or self.output_name not in outputs:
            raise ModelError(f"{self.model_path}: expected input {self.input_name!r} and output "
                             f"{self.output_name!r}, found {list(inputs)} -> {list(outputs)}")
        shape = inputs[self.input_name].shape
        size = self.preprocessing.size
        if len(shape) != 4 or list(shape[1:]) != [self.preprocessing.channels, size, size]:
            raise ModelError(f"{self.model_path}: input shape {shape} does not match the card's "
                             f"preprocessing ({self.preprocessing.channels}x{size}x{size})")
        k = outputs[self.output_name].shape[-1]
        if isinstance(k, int) and k != len(self.labels):
            raise ModelError(f"{self.model_path}: {k} outputs but {len(self.labels)} labels in the card")

    @property
    def size(self) -> int:
        return self.preprocessing.size

    def predict(self, crops: np.ndarray) -> np.ndarray:
        """Probabilities float32 (N, K) for uint8 crops (N, S, S) or one crop (S, S)."""
        arr = np.asarray(crops)
        if arr.dtype != np.uint8:
            raise ValueError(f"expected uint8 crops, got {arr.dtype}")
        if arr.ndim == 2:
            arr = arr[None]
        if len(arr) == 0:
            return np.zeros((0, len(self.labels)), dtype=np.float32)
        out = []
        for start in range(0, len(arr), self.max_batch):
            x = normalize(arr[start:start + self.max_batch], self.preprocessing)
            out.append(self.session.run([self.output_name], {self.input_name: x})[0])
        return np.concatenate(out).astype(np.float32, copy=False)


__all__ = ["Classifier", "read_card", "card_path", "sha256_file", "check_threads", "CARD_FORMAT"]
