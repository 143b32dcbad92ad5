"""Checkpoint -> ONNX with the softmax inside the graph, a parity check, and the model card beside it.

The exported file is only kept when ONNX Runtime agrees with PyTorch on random tensors, random and
constant crops, a single-image batch and (optionally) real images to within `atol` in probability:
a model that passes here classifies identically in the torch-free engine. The card (format in
docs/CONTRACTS.md) carries everything a user of the .onnx needs: labels, preprocessing, tensor
names, SHA-256, architecture size, how it was trained, measured metrics and known limitations.
Heavy imports (torch, onnx, onnxruntime) stay inside functions.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal, Optional

import numpy as np

from .config import option
from .card import (LIMITATIONS, VIEWS, build_card, epochs_info, load_metrics, merge_metrics,  # noqa: F401
                   reproduce_commands, train_command, training_info, write_card)
from .runtime.engine import card_path, read_card
from .errors import ModelError
from .preprocessing import Preprocessing, normalize

OPSET = 17
#: The opsets torch's TorchScript ONNX exporter (the one `export_onnx` uses) writes.
MIN_OPSET, MAX_OPSET = 7, 20




@dataclass
class ExportConfig:
    """`nasfer export` flags."""

    checkpoint: Optional[str] = option(None, "training checkpoint (.pt, e.g. runs/vgg/best.pt); leave out "
                                             "to only merge --metrics into the card of an existing --out")
    onnx: Optional[str] = option(None, "an exported fp32 .onnx (with its card) to quantize with --quantize, "
                                       "instead of --checkpoint")
    out: str = option("model.onnx", "ONNX file to write; the model card goes beside it (same stem, .json)")
    name: Optional[str] = option(None, "model name in the card (default: the output file's stem)")
    opset: int = option(OPSET, "ONNX opset version")
    tta: bool = option(False, "bake flip test-time augmentation into the graph (mean of the crop and its "
                              "mirror image: a little more accurate, twice the compute)")
    ten_crop: bool = option(False, "bake ten-crop test-time augmentation into the graph (4 corner and the centre "
                                   "views shifted 4 px, and their mirrors: ten times the compute)")
    quantize: Optional[Literal["int8"]] = option(
        None, "static int8 quantization (ONNX Runtime, QDQ, per-channel int8 weights, uint8 activations), "
              "calibrated on --calibration-data's training images, kept only if validation accuracy drops by "
              "at most --max-accuracy-drop points")
    calibration_data: Optional[str] = option(None, "with --quantize: the dataset the model was trained on; its "
                                                   "training images calibrate, its validation images check parity")
    calibration_images: int = option(300, "with --quantize: training images used for calibration")
    split_file: Optional[str] = option(None, "with --quantize: the training run's splits.json (default: draw the "
                                             "split as `nasfer train` does from --seed and --val-fraction)")
    seed: int = option(0, "with --quantize: the training run's --seed (its validation split)")
    val_fraction: float = option(0.1, "with --quantize: the training run's --val-fraction")
    max_accuracy_drop: float = option(0.3, "with --quantize: largest allowed validation accuracy drop, in points")
    atol: float = option(1e-4, "largest allowed |ONNX Runtime - PyTorch| difference of a probability")
    parity_data: Optional[str] = option(None, "dataset whose first images join the parity check "
                                              "(any --data format nasfer reads)")
    metrics: Optional[str] = option(None, "evaluation JSON (`nasfer evaluate --json FILE`) to store in the card")
    metrics_split: Optional[str] = option(None, "name the --metrics results are stored under, e.g. PublicTest "
                                                "(default: the JSON's 'split' field, else 'test')")

    def validate(self) -> "ExportConfig":
        """Raise ValueError naming the first impossible setting, or a --quantize flag given without
        --quantize; return self."""
        from .config import changed_flags
        from .quantize import MIN_OPSET as QUANTIZE_MIN_OPSET
        from .validation import check, check_only_with

        if not self.quantize:
            check_only_with(changed_flags(self, QUANTIZE_ONLY), "--quantize int8")
        quantized = self.quantize and self.checkpoint
        low = QUANTIZE_MIN_OPSET if quantized else MIN_OPSET
        check([(low <= self.opset <= MAX_OPSET,
                f"--opset must be {low}..{MAX_OPSET} (what torch's TorchScript ONNX exporter writes"
                + (", and int8 QDQ needs" if quantized else "") + f"), got {self.opset}"),
               (0.0 < self.atol < 1.0, f"--atol must be within (0, 1) (a probability difference), got {self.atol}"),
               (self.calibration_images >= 1,
                f"--calibration-images must be at least 1, got {self.calibration_images}"),
               (self.seed >= 0, f"--seed must be >= 0, got {self.seed}"),
               (0.0 < self.val_fraction < 1.0, f"--val-fraction must be within (0, 1), got {self.val_fraction}"),
               (0.0 <= self.max_accuracy_drop <= 100.0,
                f"--max-accuracy-drop must be within 0..100 (accuracy points), got {self.max_accuracy_drop}")])
        return self


#: The flags that only --quantize reads.
QUANTIZE_ONLY = ("calibration_data", "calibration_images", "split_file", "seed", "val_fraction", "max_accuracy_drop")


@dataclass
class ExportResult:
    onnx: Path
    card_path: Path
    card: dict[str, Any]
    max_abs_diff: Optional[float]


# ------------------------------------------------------------------------------------------------ ONNX
def probs_module(model, tta: bool | str | None = False):
    """`model` wrapped so its output is softmax probabilities, eval mode.

    tta: False/None, True or "flip" (mean with the mirror image), "ten-crop" (`nasfer.tta.ten_crop_module`).
    """
    import torch

    from .tta import ten_crop_module

    kind = "flip" if tta is True else (tta or None)
    if kind == "ten-crop":
        return ten_crop_module(model)
    if kind not in (None, "flip"):
        raise ValueError(f"unknown TTA {tta!r}")

    class Probabilities(torch.nn.Module):
        def __init__(self, net: torch.nn.Module, flip: bool):
            super().__init__()
            self.net = net
            self.flip = flip

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            if not self.flip:
                return torch.softmax(self.net(x), dim=1)
            views = torch.cat([x, torch.flip(x, dims=[3])])  # (2N, C, S, S): one pass over both views
            return torch.softmax(self.net(views), dim=1).reshape(2, x.shape[0], -1).mean(0)

    return Probabilities(model, kind == "flip").eval()


def export_onnx(model, path: str | os.PathLike, preprocessing: Preprocessing, opset: int = OPSET,
                tta: bool | str | None = False) -> int:
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
    return default_opset(proto) or OPSET


def default_opset(proto: Any) -> int | None:
    """The opset an onnx.ModelProto imports for the default ONNX domain ("" or "ai.onnx"); None if it imports none."""
    return next((int(o.version) for o in proto.opset_import if o.domain in ("", "ai.onnx")), None)


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
                 images: np.ndarray | None = None, atol: float = 1e-4, tta: bool | str | None = False) -> float:
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


# ------------------------------------------------------------------------------------------------ driver
def _parity_images(source: str | None, size: int) -> np.ndarray | None:
    if not source:
        return None
    from .data import read_dataset

    data = read_dataset(source, size=size, label_set="folders")  # images only: any class folders will do
    # never test images: the parity check must not read them before the one recorded test score
    return data.images[~data.split_mask("test")][:256]


def export_checkpoint(cfg: ExportConfig, images: np.ndarray | None = None) -> ExportResult:
    """Export `cfg.checkpoint` to `cfg.out` (+ card), or only merge `cfg.metrics` into an existing card.

    `images` (uint8 (N,S,S)) join the parity check, as do `cfg.parity_data`'s first images.
    """
    from .record import check_replaceable, command_line

    cfg.validate()  # the CLI validated already; a Python caller gets the same checks before any work
    out = Path(cfg.out)
    if out.suffix.lower() != ".onnx":
        raise ValueError(f"--out must end in .onnx, got {out}")
    if cfg.tta and cfg.ten_crop:
        raise ValueError("--tta and --ten-crop together: ten-crop already averages the mirror images; choose one")
    if cfg.checkpoint or cfg.quantize:
        check_replaceable(out)
    if cfg.quantize:
        from .quantize import export_quantized

        return export_quantized(cfg, images)
    if cfg.onnx:
        raise ValueError("--onnx names the fp32 model that --quantize int8 quantizes; to export a checkpoint, "
                         "use --checkpoint")
    metrics = load_metrics(cfg.metrics) if cfg.metrics else None
    if not cfg.checkpoint:
        if metrics is None:
            raise ValueError("give --checkpoint to export, or --metrics to update the card of an existing --out")
        if not out.is_file():
            raise ModelError(f"{out}: no such model to add metrics to")
        card = read_card(out)
        split = cfg.metrics_split or str(metrics.get("split") or "test")
        if ((card.get("metrics") or {}).get(split) or {}).get("recorded"):
            raise ModelError(f"{out}: its card records a {split} score (nasfer evaluate --record), which --metrics "
                             "would replace; a released model is scored on it once (--metrics-split NAME stores "
                             "these metrics under another name)")
        card = merge_metrics(card, metrics, split)
        write_card(card_path(out), card)
        return ExportResult(out, card_path(out), card, None)

    from .checkpoint import load_model, preprocessing_of

    model, ckpt = load_model(cfg.checkpoint)
    spec = preprocessing_of(ckpt)
    tta = "ten-crop" if cfg.ten_crop else cfg.tta
    given = [a for a in (images, _parity_images(cfg.parity_data, spec.size)) if a is not None and len(a)]
    given_images = np.concatenate([np.asarray(a, np.uint8) for a in given]) if given else None
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_name(out.stem + ".tmp.onnx")
    try:
        opset = export_onnx(model, tmp, spec, cfg.opset, tta)
        diff = parity_check(model, tmp, spec, given_images, cfg.atol, tta)
        os.replace(tmp, out)
    finally:
        tmp.unlink(missing_ok=True)
    card = build_card(ckpt, model, out, name=cfg.name or out.stem, opset=opset, tta=tta, max_abs_diff=diff,
                      command=command_line("export", cfg), run_dir=Path(cfg.checkpoint).parent)
    if metrics is not None:
        card = merge_metrics(card, metrics, cfg.metrics_split)
    write_card(card_path(out), card)
    return ExportResult(out, card_path(out), card, diff)


__all__ = ["ExportConfig", "ExportResult", "export_checkpoint", "export_onnx", "parity_check", "parity_inputs",
           "build_card", "training_info", "epochs_info", "reproduce_commands", "train_command", "merge_metrics",
           "load_metrics", "write_card", "LIMITATIONS", "VIEWS"]
