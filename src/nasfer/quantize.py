"""Static int8 quantization of an exported model with ONNX Runtime's quantization tools, parity-checked.

Method (ONNX Runtime, "Quantize ONNX models", static quantization): `quant_pre_process` (shape
inference and graph optimisation) first, then `quantize_static` in QDQ format with per-channel
symmetric int8 weights in the 7-bit range [-64, 64] (`reduce_range`) and uint8 activations whose ranges are
calibrated (MinMax) on a few hundred TRAINING images. The 7-bit weights matter: on x86 CPUs without VNNI
(AVX2 only, most of them), ONNX Runtime's u8 x s8 kernels add pairs of products in int16 (VPMADDUBSW), which
overflows for 255 x 127 x 2 and not for 255 x 64 x 2 (ONNX Runtime's docs, "Quantize ONNX models", on
saturation). With full-range weights the shipped fast model agreed with its fp32 graph on 82% of validation
faces on such a CPU (2-core AVX2 EPYC; benchmarks/results/int8_agreement_avx2.json), against 99% on one with
VNNI: the same file gave other answers by CPU. The softmax and what follows it (TTA averaging) stay float (`probability_nodes`). Dynamic quantization is deliberately not offered: it re-derives activation scales
on every call, which made these CNNs about 6x slower on this CPU.

The int8 model is kept only if, on the VALIDATION images held out of Training (the same split a
training run selects on), its accuracy is at most `max_drop` points below the fp32 model's; the
result and the parity figures go into the int8 model's card. The engine runs the int8 file unchanged
(it is an ordinary ONNX graph with QuantizeLinear/DequantizeLinear nodes, same input and output).
"""

from __future__ import annotations

import json
import os
import tempfile
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Iterator

import numpy as np

from .errors import DataError, ModelError
from .preprocessing import Preprocessing, normalize

#: Lowest ONNX opset a per-channel QDQ model can have (QuantizeLinear's `axis` came in opset 13).
MIN_OPSET = 13
#: How the card names the method (recorded verbatim).
METHOD = ("onnxruntime.quantization.quantize_static after quant_pre_process; QDQ format; per-channel int8 "
          "weights (symmetric, 7-bit range [-64, 64]: reduce_range, no int16 overflow on CPUs without VNNI); "
          "uint8 activations calibrated with MinMax; softmax and TTA averaging kept float")


@dataclass(frozen=True)
class QuantData:
    """Images for calibration and parity: uint8 (N, S, S) crops, labels int64 (N,) in the model's label order."""

    calibration: np.ndarray
    validation: np.ndarray
    validation_labels: np.ndarray
    split: dict[str, Any]  # how the split was made, for the card


def graph_opset(path: str | os.PathLike) -> int:
    """The default-domain ONNX opset the graph at `path` imports. ModelError for a file ONNX cannot parse."""
    import onnx

    from .export import default_opset

    try:
        proto = onnx.load(str(path), load_external_data=False)
    except Exception as exc:  # protobuf's DecodeError and friends: not an ONNX model
        raise ModelError(f"{path}: not an ONNX model ({type(exc).__name__})") from None
    return default_opset(proto) or 1  # none imported: the oldest, so the check refuses it


def calibration_batches(images: np.ndarray, preprocessing: Preprocessing, input_name: str = "input",
                        batch_size: int = 32) -> Iterator[dict[str, np.ndarray]]:
    """Model feeds {input_name: float32 (B, C, S, S)} of the normalised uint8 crops `images` (N, S, S)."""
    for start in range(0, len(images), batch_size):
        yield {input_name: normalize(np.ascontiguousarray(images[start:start + batch_size]), preprocessing)}


def _reader(images: np.ndarray, preprocessing: Preprocessing, input_name: str):
    """An `onnxruntime.quantization.CalibrationDataReader` over `calibration_batches`."""
    from onnxruntime.quantization import CalibrationDataReader

    class FaceCalibrationReader(CalibrationDataReader):
        def __init__(self) -> None:
            self._batches = calibration_batches(images, preprocessing, input_name)

        def get_next(self):
            return next(self._batches, None)

        def rewind(self) -> None:
            self._batches = calibration_batches(images, preprocessing, input_name)

    return FaceCalibrationReader()


def quantize_int8(fp32: str | os.PathLike, out: str | os.PathLike, calibration: np.ndarray,
                  preprocessing: Preprocessing, input_name: str = "input") -> None:
    """Write the static int8 (QDQ) version of the fp32 ONNX model `fp32` to `out`.

    calibration: uint8 (N, S, S) training crops (a few hundred suffice). Raises DataError without any.
    """
    from onnxruntime.quantization import CalibrationMethod, QuantFormat, QuantType, quantize_static
    from onnxruntime.quantization.shape_inference import quant_pre_process

    if calibration is None or not len(calibration):
        raise DataError("int8 calibration needs training images; none were given")
    with tempfile.TemporaryDirectory(prefix="nasfer-quant-") as tmp:
        prepared = Path(tmp) / "prepared.onnx"
        quant_pre_process(str(fp32), str(prepared), skip_symbolic_shape=True)
        quantize_static(str(prepared), str(out), _reader(calibration, preprocessing, input_name),
                        quant_format=QuantFormat.QDQ, per_channel=True, reduce_range=True, weight_type=QuantType.QInt8,
                        activation_type=QuantType.QUInt8, calibrate_method=CalibrationMethod.MinMax,
                        nodes_to_exclude=probability_nodes(prepared),
                        extra_options={"WeightSymmetric": True, "ActivationSymmetric": False})


def probability_nodes(path: str | os.PathLike) -> list[str]:
    """Names of the Softmax nodes of an ONNX graph and of every node downstream of them.

    They stay in float: quantized to uint8, probabilities would come in steps of 1/255 and no longer sum
    to 1; TTA averaging after the softmax costs nothing in float. The network itself is quantized.
    """
    import onnx

    graph = onnx.load(str(path)).graph
    tainted: set[str] = set()
    names: list[str] = []
    for node in graph.node:  # ONNX graphs are topologically sorted
        if node.op_type == "Softmax" or tainted.intersection(node.input):
            names.append(node.name)
            tainted.update(node.output)
    return names


def validation_parity(fp32_predict, int8_predict, images: np.ndarray, labels: np.ndarray,
                      max_drop: float) -> dict[str, Any]:
    """Accuracy of both models on the validation crops and how far apart they are.

    fp32_predict/int8_predict: uint8 (N, S, S) -> probabilities (N, K). max_drop: accuracy points
    (0.3 = 0.3 percentage points). Raises ModelError if int8 is more than `max_drop` points less accurate.
    """
    if not len(images):
        raise DataError("the int8 parity check needs validation images; none were given")
    p32, p8 = np.asarray(fp32_predict(images)), np.asarray(int8_predict(images))
    acc32 = float(np.mean(p32.argmax(1) == labels))
    acc8 = float(np.mean(p8.argmax(1) == labels))
    drop = 100.0 * (acc32 - acc8)
    result = {
        "split": "validation", "n": int(len(images)),
        "fp32_accuracy": acc32, "int8_accuracy": acc8, "accuracy_drop_points": round(drop, 4),
        "max_drop_points": max_drop, "top1_agreement": float(np.mean(p32.argmax(1) == p8.argmax(1))),
        "max_abs_prob_diff": float(np.max(np.abs(p32 - p8))),
    }
    if drop > max_drop:
        raise ModelError(f"int8 quantization refused: validation accuracy {100 * acc8:.2f}% vs {100 * acc32:.2f}% "
                         f"for fp32 on {len(images)} images, a drop of {drop:.2f} points (allowed "
                         f"{max_drop:.2f}); the int8 model was not written")
    return result


def split_images(data_path: str, labels: tuple[str, ...], size: int, *, n_calibration: int, seed: int,
                 val_fraction: float, split_file: str | None = None, dataset: str = "auto",
                 training: dict | None = None) -> QuantData:
    """Training crops for calibration and validation crops (with labels) for parity, from one dataset.

    The roles are a training run's: from `split_file` (its splits.json), or drawn as `nasfer train`
    draws them (seed, val_fraction; `nasfer.train.plan_split`). Calibration takes `n_calibration`
    training images spread evenly over the training role, so it is deterministic. Dataset labels
    are mapped to the model's by name (DataError if the model lacks one that has validation images).
    `training`: the model's training config (its card's training.config); a model trained with --detect-faces
    calibrates and checks parity on face crops, as it trained (before: on whole photos shrunk to the input).
    """
    from .config import TrainConfig
    from .data.facecrop import read_images, trained_on_face_crops
    from .data.splits import TRAIN, VAL, sample_keys
    from .data.readers import detect_kind
    from .labels import label_index_map, reading_label_set
    from .train import plan_split

    kind = detect_kind(Path(data_path).expanduser()) if dataset == "auto" else dataset
    crops = trained_on_face_crops(training or {}, kind)
    data = read_images(data_path, kind, face_crops=crops, size=size, label_set=reading_label_set(labels, kind))
    keys = sample_keys(data.sources, str(Path(data_path).expanduser()))
    roles = plan_split(data, TrainConfig(seed=seed, val_fraction=val_fraction), keys, split_file)
    train_idx, val_idx = np.flatnonzero(roles == TRAIN), np.flatnonzero(roles == VAL)
    if not len(train_idx) or not len(val_idx):
        raise DataError(f"{data_path}: need both training and validation images for int8 calibration and "
                        f"parity, found {len(train_idx)} and {len(val_idx)}")
    pick = train_idx[np.linspace(0, len(train_idx) - 1, min(n_calibration, len(train_idx))).astype(int)]
    index = label_index_map(data.label_names, labels)
    val_labels = index[data.labels[val_idx]]
    if (val_labels < 0).any():
        raise DataError(f"{data_path}: validation images with labels the model lacks")
    return QuantData(calibration=data.images[pick], validation=data.images[val_idx], validation_labels=val_labels,
                     split={"data": Path(data_path).name, "split_file": Path(split_file).name if split_file else None,
                            "seed": seed, "val_fraction": val_fraction, "n_calibration": int(len(pick)),
                            "n_validation": int(len(val_idx)), "face_crops": crops})


def check_held_out_split(card: dict, split_file: str | None, seed: int, val_fraction: float) -> None:
    """ValueError when the flags would draw other validation images than the model held out.

    The model's split is that of its (first member's) training run: its --split-file (then --split-file
    must name the same run's file), else its --seed and --val-fraction (and the default --test-fraction and
    --limit, the only ones this command can redraw); an ensemble selected on another run's splits.json needs
    that file. A card that does not say (older cards) is not checked.
    """
    from .card import run_relative
    from .config import TrainConfig

    config = (card.get("training") or {}).get("config") or {}
    first = next(iter(config.get("members") or []), config)
    train = (first or {}).get("train") or {}
    if not train:
        return
    own = run_relative(Path(str(train["out"])) / "splits.json") if train.get("out") else None
    selection = (card.get("training") or {}).get("selection") or config.get("selection") or {}  # older cards: config
    selected_on = selection.get("validation_split")
    needed = train.get("split_file") or (selected_on if selected_on and selected_on != own else None)
    if needed:
        if split_file is None or run_relative(split_file) != run_relative(needed):
            raise ValueError(f"the model held out the validation images of {run_relative(needed)}: pass that file "
                             "as --split-file, so calibration reads training images and the parity check the "
                             "images it was selected on")
        return
    if split_file:
        return  # the run drew its split; its splits.json (beside its checkpoints) holds exactly that draw
    defaults = TrainConfig()
    redraw = ("test_fraction", "limit", "label_set")  # flags this command cannot repeat: the draw would differ
    if any(train.get(k, getattr(defaults, k)) != getattr(defaults, k) for k in redraw):
        raise ValueError("the model's training run drew its split with a non-default --test-fraction, --limit or "
                         f"--label-set: pass its splits.json as --split-file ({own or 'RUN/splits.json'})")
    held = (train.get("seed", defaults.seed), train.get("val_fraction", defaults.val_fraction))
    if (seed, val_fraction) != held:
        raise ValueError(f"the model's training run drew its validation split with --seed {held[0]} --val-fraction "
                         f"{held[1]}; give those (not --seed {seed} --val-fraction {val_fraction}), or its "
                         f"splits.json as --split-file")


def onnx_predict(path: str | os.PathLike, preprocessing: Preprocessing, input_name: str = "input",
                 output_name: str = "probs", batch_size: int = 256):
    """uint8 (N, S, S) -> probabilities float32 (N, K) through ONNX Runtime with the engine's settings
    (ORT_ENABLE_ALL, CPU), for a graph that has no card beside it yet."""
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    options.log_severity_level = 3
    session = ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])

    def predict(images: np.ndarray) -> np.ndarray:
        return np.concatenate([session.run([output_name], {input_name: batch[input_name]})[0]
                               for batch in calibration_batches(images, preprocessing, input_name, batch_size)])

    return predict


def legacy_card(card: dict[str, Any]) -> dict[str, Any]:
    """A card written before the `training.commands`/epoch fields and `export.command` in today's form.

    `training.command` (one line joined by ' && ') becomes `commands`; the ambiguous `epochs` (the
    history length of the best checkpoint) becomes `best_epoch` beside `scheduled_epochs` (the run's
    --epochs); `epochs_completed`/`completed` stay None where the card cannot tell; a hand-written
    `note` is dropped (the facts it stated are generated fields now); an ensemble's `members` get their
    scheduled epochs from the config (the rest unknown); the export command is rebuilt
    from the card's own name, TTA and file (`export.command_rebuilt: true` says so).
    """
    card = json.loads(json.dumps(card))
    training = card.setdefault("training", {})
    if "commands" not in training and training.get("command"):
        training["commands"] = [c.strip() for c in str(training.pop("command")).split(" && ")]
    training.pop("note", None)
    if "best_epoch" not in training:
        training.pop("epochs", None)
        best = training.pop("checkpoint_epoch", None)
        scheduled = ((training.get("config") or {}).get("train") or {}).get("epochs")
        done = best if best is not None and best == scheduled else None
        training.update({"best_epoch": best, "scheduled_epochs": scheduled, "epochs_completed": done,
                         "completed": None if done is None else True})
    members = (training.get("config") or {}).get("members")
    if isinstance(members, list) and "members" not in training:
        training["members"] = [{"best_epoch": None, "scheduled_epochs": ((m or {}).get("train") or {}).get("epochs"),
                                "epochs_completed": None, "completed": None} for m in members]
    export = card.setdefault("export", {})
    if not export.get("command"):
        commands = training.get("commands") or []
        last = commands[-1] if commands else ""
        if last.startswith("nasfer ensemble") and "--out" in last.split():
            ckpt = last.split()[last.split().index("--out") + 1]
        else:
            cfg = (training.get("config") or {}).get("train") or {}
            ckpt = f"{cfg.get('out', 'run')}/best.pt"
        tta = (card.get("onnx") or {}).get("tta")
        flag = " --tta" if tta is True or tta == "flip" else " --ten-crop" if tta == "ten-crop" else ""
        export["command"] = (f"nasfer export --checkpoint {ckpt} --out {(card.get('onnx') or {}).get('file')} "
                             f"--name {card.get('name')}{flag}")
        export["command_rebuilt"] = True
    return card


def export_quantized(cfg, images: np.ndarray | None = None):
    """`nasfer export --quantize int8`: quantize --onnx (or --checkpoint exported to fp32 first) into --out.

    The fp32 source is kept (`--onnx` as it is; a --checkpoint's fp32 export as `<out stem>-fp32.onnx`).
    The int8 card is the source's with the new file and SHA-256, no test metrics (the int8 model is a new
    released model, scored on its own) and a `quantization` section: method, source, calibration and
    validation parity, command. ModelError when parity fails (nothing written), ValueError/DataError for
    bad flags or data.
    """
    import dataclasses
    from importlib.metadata import version

    from .card import write_card
    from .runtime.engine import card_path, read_card, sha256_file
    from .export import QUANTIZE_ONLY, ExportConfig, ExportResult, export_checkpoint
    from .record import command_line

    out = Path(cfg.out)
    if bool(cfg.checkpoint) == bool(cfg.onnx):
        raise ValueError("--quantize int8 needs exactly one source: --onnx FILE.onnx (an fp32 export) or "
                         "--checkpoint FILE.pt")
    if cfg.metrics:
        raise ValueError("--metrics does not apply to --quantize: score the int8 model itself (nasfer evaluate "
                         "--record)")
    if not cfg.calibration_data:
        raise ValueError("--quantize int8 needs --calibration-data: the dataset the model was trained on "
                         "(training images calibrate, validation images check parity)")
    if cfg.onnx and (cfg.tta or cfg.ten_crop):
        raise ValueError("--tta/--ten-crop apply when exporting a checkpoint; an --onnx model keeps the TTA its "
                         "graph has")
    if cfg.checkpoint:
        source = out.with_name(out.stem + "-fp32.onnx")
        fp32 = {name: getattr(ExportConfig(), name) for name in QUANTIZE_ONLY}  # the plain export's own flags only
        export_checkpoint(dataclasses.replace(cfg, quantize=None, out=str(source), name=cfg.name or out.stem, **fp32),
                          images)
    else:
        from .runtime.outputs import file_key

        source = Path(cfg.onnx)
        if not source.is_file():
            raise ModelError(f"{source}: model file not found")
        if file_key(source) == file_key(out):  # before: the fp32 model and its card were replaced by the int8 ones
            raise ValueError(f"--out {out} is the --onnx model itself: quantizing in place would lose the fp32 "
                             "model; write the int8 model to another file (nothing was done)")
    src_card = legacy_card(read_card(source))
    source_sha = sha256_file(source)
    if src_card.get("quantization"):
        raise ModelError(f"{source} is quantized already ({src_card['quantization'].get('format')})")
    opset = graph_opset(source)  # the graph's own, not its card's (a legacy card may not say)
    if opset < MIN_OPSET:
        raise ModelError(f"{source} has ONNX opset {opset}; per-channel int8 quantization needs opset {MIN_OPSET} "
                         f"or later (export it again with --opset {MIN_OPSET} or more)")
    check_held_out_split(src_card, cfg.split_file, cfg.seed, cfg.val_fraction)
    prep = Preprocessing.from_dict(src_card["preprocessing"])
    io = src_card.get("onnx") or {}
    names = (io.get("input", "input"), io.get("output", "probs"))
    data = split_images(cfg.calibration_data, tuple(src_card["labels"]), prep.size,
                        n_calibration=cfg.calibration_images, seed=cfg.seed, val_fraction=cfg.val_fraction,
                        split_file=cfg.split_file, training=(src_card.get("training") or {}).get("config"))
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_name(out.stem + ".int8.tmp.onnx")
    try:
        quantize_int8(source, tmp, data.calibration, prep, names[0])
        parity = validation_parity(onnx_predict(source, prep, *names), onnx_predict(tmp, prep, *names),
                                   data.validation, data.validation_labels, cfg.max_accuracy_drop)
        os.replace(tmp, out)
    finally:
        tmp.unlink(missing_ok=True)
    previous = {split: {k: m.get(k) for k in ("accuracy", "macro_f1", "recorded")}
                for split, m in (src_card.get("metrics") or {}).items() if isinstance(m, dict)}
    card = {**src_card, "name": cfg.name or src_card.get("name") or out.stem,
            "onnx": {**io, "file": out.name, "sha256": sha256_file(out)}, "metrics": {},
            "quantization": {
                "format": "int8", "method": METHOD, "onnxruntime": version("onnxruntime"),
                "date": datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ"),
                "source": {"file": source.name, "sha256": source_sha, "metrics": previous},
                "calibration": data.split, "parity": parity, "command": command_line("export", cfg)}}
    write_card(card_path(out), card)
    return ExportResult(out, card_path(out), card, None)


__all__ = ["METHOD", "QuantData", "calibration_batches", "quantize_int8", "probability_nodes", "validation_parity",
           "split_images", "check_held_out_split", "onnx_predict", "legacy_card", "export_quantized"]
