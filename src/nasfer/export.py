"""Checkpoint -> ONNX with the softmax inside the graph, a parity check, and the model card beside it.

The exported file is only kept when ONNX Runtime agrees with PyTorch on random tensors, random and
constant crops, a single-image batch and (optionally) real images to within `atol` in probability:
a model that passes here classifies identically in the torch-free engine. The card (format in
docs/CONTRACTS.md) carries everything a user of the .onnx needs: labels, preprocessing, tensor
names, SHA-256, architecture size, how it was trained, measured metrics and known limitations.
Heavy imports (torch, onnx, onnxruntime) stay inside functions.
"""

from __future__ import annotations

import dataclasses
import json
import os
import shlex
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Optional

import numpy as np

from .config import option
from .engine import CARD_FORMAT, card_path, read_card, sha256_file
from .errors import ModelError
from .preprocessing import Preprocessing, normalize

OPSET = 17

LIMITATIONS = [
    "Trained on FER2013, whose labels are noisy: human agreement on its test images is only about 65%, "
    "so individual predictions are often wrong, especially for disgust and fear (few, ambiguous examples).",
    "Sees a 48x48 grayscale crop: colour, fine detail, context, body language and speech are ignored.",
    "FER2013 is web-scraped faces: mostly frontal, posed or staged expressions, with uneven coverage of "
    "age, skin tone, gender presentation and culture; accuracy differs between groups and has not been audited.",
    "Expressions are not feelings: the model labels facial movements, not what a person experiences.",
    "Not for high-stakes decisions (hiring, education, policing, health, credit, border control) "
    "or for monitoring people without their informed consent.",
    "Depends on the face detector: missed, partial, small (< ~40 px), profile or rolled faces degrade or drop results.",
]


@dataclass
class ExportConfig:
    """`nasfer export` flags."""

    checkpoint: Optional[str] = option(None, "training checkpoint (.pt, e.g. runs/vgg/best.pt); leave out "
                                             "to only merge --metrics into the card of an existing --out")
    out: str = option("model.onnx", "ONNX file to write; the model card goes beside it (same stem, .json)")
    name: Optional[str] = option(None, "model name in the card (default: the output file's stem)")
    opset: int = option(OPSET, "ONNX opset version")
    tta: bool = option(False, "bake flip test-time augmentation into the graph (mean of the crop and its "
                              "mirror image: a little more accurate, twice the compute)")
    atol: float = option(1e-4, "largest allowed |ONNX Runtime - PyTorch| difference of a probability")
    parity_data: Optional[str] = option(None, "dataset whose first images join the parity check "
                                              "(any --data format nasfer reads)")
    metrics: Optional[str] = option(None, "evaluation JSON (`nasfer evaluate --json FILE`) to store in the card")
    metrics_split: Optional[str] = option(None, "name the --metrics results are stored under, e.g. PublicTest "
                                                "(default: the JSON's 'split' field, else 'test')")


@dataclass
class ExportResult:
    onnx: Path
    card_path: Path
    card: dict[str, Any]
    max_abs_diff: Optional[float]


# ------------------------------------------------------------------------------------------------ ONNX
def probs_module(model, tta: bool = False):
    """`model` wrapped so its output is softmax probabilities (optionally flip-TTA averaged), eval mode."""
    import torch

    class Probabilities(torch.nn.Module):
        def __init__(self, net: torch.nn.Module, flip: bool):
            super().__init__()
            self.net = net
            self.flip = flip

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            probs = torch.softmax(self.net(x), dim=1)
            if self.flip:
                probs = 0.5 * (probs + torch.softmax(self.net(torch.flip(x, dims=[3])), dim=1))
            return probs

    return Probabilities(model, tta).eval()


def export_onnx(model, path: str | os.PathLike, preprocessing: Preprocessing, opset: int = OPSET,
                tta: bool = False) -> int:
    """Write `model` (logits) as ONNX: input `input` [N,C,S,S] (dynamic N), output `probs` [N,K].

    Uses the TorchScript-based exporter: the dynamo exporter cannot target opset 17 (its minimum is
    18) and takes ~15x longer for these small CNNs. Returns the opset written.
    """
    import warnings

    import torch

    wrapper = probs_module(model, tta)
    dummy = torch.zeros(2, preprocessing.channels, preprocessing.size, preprocessing.size)
    kwargs: dict[str, Any] = dict(
        opset_version=opset, input_names=["input"], output_names=["probs"],
        dynamic_axes={"input": {0: "batch"}, "probs": {0: "batch"}}, do_constant_folding=True)
    with warnings.catch_warnings(), torch.no_grad():
        warnings.simplefilter("ignore")  # the legacy exporter's deprecation notices
        try:
            torch.onnx.export(wrapper, (dummy,), str(path), dynamo=False, **kwargs)
        except TypeError as exc:  # torch < 2.5 has no `dynamo` argument
            if "dynamo" not in str(exc):
                raise
            torch.onnx.export(wrapper, (dummy,), str(path), **kwargs)
    return _check_onnx(path)


def _check_onnx(path: str | os.PathLike) -> int:
    import onnx

    proto = onnx.load(str(path))
    onnx.checker.check_model(proto)
    return next((o.version for o in proto.opset_import if o.domain in ("", "ai.onnx")), OPSET)


def parity_inputs(preprocessing: Preprocessing, images: np.ndarray | None = None, seed: int = 0,
                  max_images: int = 256) -> dict[str, np.ndarray]:
    """Named float32 model inputs the parity check runs: random tensors, crops, edge cases, real images."""
    rng = np.random.default_rng(seed)
    s, c = preprocessing.size, preprocessing.channels
    cases = {
        "random normal": (rng.standard_normal((8, c, s, s)) * 1.5).astype(np.float32),
        "random crops": normalize(rng.integers(0, 256, (8, s, s), dtype=np.uint8), preprocessing),
        "black and white": normalize(np.stack([np.zeros((s, s), np.uint8), np.full((s, s), 255, np.uint8)]),
                                     preprocessing),
        "batch of one": (rng.standard_normal((1, c, s, s))).astype(np.float32),
    }
    if images is not None and len(images):
        cases["given images"] = normalize(np.asarray(images, dtype=np.uint8)[:max_images], preprocessing)
    return cases


def parity_check(model, onnx_path: str | os.PathLike, preprocessing: Preprocessing,
                 images: np.ndarray | None = None, atol: float = 1e-4, tta: bool = False) -> float:
    """Largest |ONNX Runtime - PyTorch| probability over `parity_inputs`; ModelError above `atol`."""
    import onnxruntime as ort
    import torch

    session = ort.InferenceSession(str(onnx_path), providers=["CPUExecutionProvider"])
    wrapper = probs_module(model, tta)
    worst, worst_case = 0.0, ""
    for case, x in parity_inputs(preprocessing, images).items():
        got = session.run(["probs"], {"input": x})[0]
        with torch.no_grad():
            want = wrapper(torch.from_numpy(x)).numpy()
        if got.shape != want.shape:
            raise ModelError(f"parity check ({case}): ONNX output {got.shape} vs PyTorch {want.shape}")
        diff = float(np.max(np.abs(got - want)))
        if not np.isfinite(diff):
            raise ModelError(f"parity check ({case}): non-finite probabilities")
        if diff > worst:
            worst, worst_case = diff, case
    if worst > atol:
        raise ModelError(f"parity check failed: ONNX Runtime and PyTorch differ by {worst:.2e} in probability "
                         f"on {worst_case} (allowed {atol:.0e}); the .onnx was not written")
    return worst


# ------------------------------------------------------------------------------------------------ card
_PATH_KEYS = {"data", "out", "init_from", "genotype", "split_file"}


def _public(value: Any, key: str = "") -> Any:
    """Config values safe to publish: path-valued settings keep only their file name."""
    if isinstance(value, dict):
        return {k: _public(v, k) for k, v in value.items()}
    if isinstance(value, list):
        return [_public(v, key) for v in value]
    if key in _PATH_KEYS and isinstance(value, str) and value:
        return Path(value).name
    return value


def train_command(config: dict[str, Any]) -> Optional[str]:
    """The `nasfer train` command line that reproduces a checkpoint's config (non-default flags only)."""
    from .config import DataConfig, TrainConfig

    sections = [(config.get("data"), DataConfig), (config.get("train"), TrainConfig)]
    if not all(isinstance(values, dict) for values, _ in sections):
        return None
    parts = ["nasfer", "train"]
    for values, cls in sections:
        defaults = cls()
        for f in dataclasses.fields(cls):
            if f.name not in values:
                continue
            value, default = values[f.name], getattr(defaults, f.name)
            if isinstance(default, tuple):
                default = list(default)
            if value == default or value is None:
                continue
            flag = "--" + f.name.replace("_", "-")
            if isinstance(value, bool):
                parts.append(flag if value else "--no-" + f.name.replace("_", "-"))
            elif isinstance(value, (list, tuple)):
                parts += [flag, *(str(v) for v in value)]
            else:
                parts += [flag, str(value)]
    return " ".join(shlex.quote(p) for p in parts)


def training_info(ckpt: dict[str, Any]) -> dict[str, Any]:
    """The card's `training` section from a checkpoint's config, history and metrics."""
    config = _public(dict(ckpt.get("config") or {}))
    history = list(ckpt.get("history") or [])
    metrics = dict(ckpt.get("metrics") or {})
    members = config.get("members")
    info: dict[str, Any] = {
        # An ensemble is reproduced by training each member, then `nasfer ensemble` over their best.pt.
        "command": train_command(config) if not isinstance(members, list) else " && ".join(
            [c or "(member trained outside nasfer train)" for c in (train_command(m) for m in members)]
            + ["nasfer ensemble --checkpoints " + " ".join(
                f"{(m.get('train') or {}).get('out', 'run')}/best.pt" for m in members) + " --out ensemble.pt"]),
        "config": config,
        "data": (config.get("data") or {}).get("data") if isinstance(config.get("data"), dict) else None,
        "epochs": len(history) if history else (int(ckpt["epoch"]) + 1 if "epoch" in ckpt else None),
        "checkpoint_epoch": int(ckpt["epoch"]) + 1 if "epoch" in ckpt else None,
        "val_accuracy": metrics.get("val_accuracy"),
        "best_val_accuracy": metrics.get("best_val_accuracy"),
    }
    for key in ("n_train", "n_val", "skipped", "finetune"):
        if key in ckpt:
            info[key] = _public(ckpt[key]) if isinstance(ckpt[key], dict) else ckpt[key]
    if history:
        info["history"] = [{k: round(v, 5) if isinstance(v, float) else v for k, v in row.items()}
                           for row in history if isinstance(row, dict)]
    return info


def evaluation_commands(onnx_file: str) -> dict[str, str]:
    """How to reproduce the card's metrics, and to cross-check on CK+ (the design's second dataset)."""
    return {
        "fer2013": f"nasfer evaluate --data fer2013.zip --split PublicTest --model {onnx_file} --json metrics.json",
        "ckplus": f"nasfer evaluate --data CK+48 --model {onnx_file} --json ckplus.json "
                  "(contempt, which FER2013 lacks, is left out; --contempt neutral scores it as neutral, as the design did)",
    }


def build_card(ckpt: dict[str, Any], model, onnx_path: str | os.PathLike, *, name: str, opset: int,
               tta: bool, max_abs_diff: float | None) -> dict[str, Any]:
    """The model card of an exported checkpoint (see docs/CONTRACTS.md)."""
    from importlib.metadata import version

    from .checkpoint import preprocessing_of
    from .models.baselines import count_flops, count_params

    spec = preprocessing_of(ckpt)
    kwargs = dict(ckpt["model"]["kwargs"])
    genotype = kwargs.pop("genotype", None)
    flops = count_flops(model, size=spec.size, in_channels=spec.channels)
    return {
        "format": CARD_FORMAT,
        "name": name,
        "labels": list(ckpt["labels"]),
        "preprocessing": spec.to_dict(),
        "onnx": {"file": Path(onnx_path).name, "input": "input", "output": "probs", "opset": opset,
                 "sha256": sha256_file(onnx_path), "tta": tta},
        "architecture": {"name": ckpt["model"]["name"], "kwargs": kwargs, "genotype": genotype,
                         "params": count_params(model), "flops": flops * (2 if tta else 1)},
        "training": training_info(ckpt),
        "metrics": {},
        "evaluation": evaluation_commands(Path(onnx_path).name),
        "limitations": list(LIMITATIONS),
        "export": {"date": datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ"),
                   "torch": version("torch"), "onnx": version("onnx"), "onnxruntime": version("onnxruntime"),
                   "parity_max_abs_diff": max_abs_diff},
    }


def load_metrics(path: str | os.PathLike) -> dict[str, Any]:
    """An evaluation JSON file as a dict (ModelError if it is not one)."""
    try:
        data = json.loads(Path(path).read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ModelError(f"{path}: metrics file not found") from None
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ModelError(f"{path}: not a readable metrics JSON ({exc})") from None
    if not isinstance(data, dict):
        raise ModelError(f"{path}: metrics JSON must be an object (the output of `nasfer evaluate --json`)")
    return data


def merge_metrics(card: dict[str, Any], metrics: dict[str, Any], split: str | None = None) -> dict[str, Any]:
    """`card` with `metrics` stored under `split` (default: the metrics' own 'split' field, else 'test')."""
    split = split or str(metrics.get("split") or "test")
    return {**card, "metrics": {**(card.get("metrics") or {}), split: metrics}}


def write_card(path: str | os.PathLike, card: dict[str, Any]) -> None:
    """Write the card atomically (readers never see half a card)."""
    path = Path(path)
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(json.dumps(card, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
    os.replace(tmp, path)


# ------------------------------------------------------------------------------------------------ driver
def _parity_images(source: str | None, size: int) -> np.ndarray | None:
    if not source:
        return None
    from .data import read_dataset

    data = read_dataset(source, size=size)
    return data.images[:256]


def export_checkpoint(cfg: ExportConfig, images: np.ndarray | None = None) -> ExportResult:
    """Export `cfg.checkpoint` to `cfg.out` (+ card), or only merge `cfg.metrics` into an existing card.

    `images` (uint8 (N,S,S)) join the parity check, as do `cfg.parity_data`'s first images.
    """
    out = Path(cfg.out)
    if out.suffix.lower() != ".onnx":
        raise ValueError(f"--out must end in .onnx, got {out}")
    metrics = load_metrics(cfg.metrics) if cfg.metrics else None
    if not cfg.checkpoint:
        if metrics is None:
            raise ValueError("give --checkpoint to export, or --metrics to update the card of an existing --out")
        if not out.is_file():
            raise ModelError(f"{out}: no such model to add metrics to")
        card = merge_metrics(read_card(out), metrics, cfg.metrics_split)
        write_card(card_path(out), card)
        return ExportResult(out, card_path(out), card, None)

    from .checkpoint import load_model, preprocessing_of

    model, ckpt = load_model(cfg.checkpoint)
    spec = preprocessing_of(ckpt)
    given = [a for a in (images, _parity_images(cfg.parity_data, spec.size)) if a is not None and len(a)]
    given_images = np.concatenate([np.asarray(a, np.uint8) for a in given]) if given else None
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_name(out.stem + ".tmp.onnx")
    try:
        opset = export_onnx(model, tmp, spec, cfg.opset, cfg.tta)
        diff = parity_check(model, tmp, spec, given_images, cfg.atol, cfg.tta)
        os.replace(tmp, out)
    finally:
        tmp.unlink(missing_ok=True)
    card = build_card(ckpt, model, out, name=cfg.name or out.stem, opset=opset, tta=cfg.tta, max_abs_diff=diff)
    if metrics is not None:
        card = merge_metrics(card, metrics, cfg.metrics_split)
    write_card(card_path(out), card)
    return ExportResult(out, card_path(out), card, diff)


__all__ = ["ExportConfig", "ExportResult", "export_checkpoint", "export_onnx", "parity_check", "parity_inputs",
           "build_card", "training_info", "train_command", "merge_metrics", "load_metrics", "write_card",
           "LIMITATIONS"]
