"""`fit()`: train a registered model (or a NASNet from a genotype) on a face dataset.

Resumable by construction: every epoch draws its shuffling, augmentation and dropout from RNGs
seeded by (seed, epoch), and `last.pt` holds model, optimizer and scheduler state, so a run
killed after epoch k and restarted gives the same weights as one that was never interrupted.

Every run writes `splits.json` (each image's role: train/val/test) so `--split-file` can repeat it;
datasets without an official split get a seeded stratified test part, scored into `test.json`.
Fine-tuning (`--init-from`) lives in `nasfer.finetune`; the Trainer only calls it.
"""

from __future__ import annotations

import json
import math
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from .checkpoint import load_checkpoint, make_checkpoint, save_checkpoint
from .config import DataConfig, TrainConfig, apply_preset, to_dict
from .data import FaceDataset, read_dataset
from .data.augment import Augment
from .data.splits import TEST, TRAIN, VAL, apply_split_file, draw_split, read_split_file, sample_keys, write_split_file
from .errors import DataError, ModelError
from .models import create_model
from .preprocessing import Preprocessing, normalize_tensor

TRAIN_SPLIT_NAMES = ("training", "train")


# ---------------------------------------------------------------------------- pure pieces


def lr_multiplier(step: int, total_steps: int, steps_per_epoch: int, cfg: TrainConfig) -> float:
    """Learning-rate factor at optimizer step `step` for the configured schedule."""
    progress = step / max(1, total_steps)
    if cfg.schedule == "constant":
        return 1.0
    if cfg.schedule == "cosine":
        return 0.5 * (1.0 + math.cos(math.pi * progress))
    if cfg.schedule == "step":
        epoch = step // max(1, steps_per_epoch)
        return cfg.step_gamma ** sum(epoch >= m for m in cfg.step_milestones)
    # one-cycle: 25% warm-up from lr/25, cosine anneal to lr/1e4
    warm = 0.25
    if progress < warm:
        return 1.0 / 25 + (1.0 - 1.0 / 25) * progress / warm
    t = (progress - warm) / (1.0 - warm)
    return 1e-4 + (1.0 - 1e-4) * 0.5 * (1.0 + math.cos(math.pi * t))


def class_weights(labels: np.ndarray, num_classes: int, mode: str) -> torch.Tensor | None:
    """Loss weights ~ 1/frequency (or its square root), normalised to mean 1; None for 'none'."""
    if mode == "none":
        return None
    counts = np.bincount(labels, minlength=num_classes).astype(np.float64)
    inv = 1.0 / np.maximum(counts, 1.0)
    if mode == "sqrt-inverse":
        inv = np.sqrt(inv)
    inv = inv * num_classes / inv.sum()
    return torch.tensor(inv, dtype=torch.float32)


def training_split(data: FaceDataset) -> FaceDataset:
    """The official Training split, or the folder named train; a dataset without splits is all training."""
    mask, _ = training_mask(data)
    return data if mask.all() else data.subset(mask)


def training_mask(data: FaceDataset) -> tuple[np.ndarray, bool]:
    """(mask of the training samples, whether the dataset has an official split)."""
    present = {s.lower() for s in data.split_names()}
    lowered = np.char.lower(data.splits.astype(str))
    for name in TRAIN_SPLIT_NAMES:
        if name in present:
            return np.isin(lowered, ["train", "training"]), True
    if present == {"all"}:
        return np.ones(len(data), dtype=bool), False
    raise DataError(f"no Training/train split among {', '.join(data.split_names())}")


def load_dataset(cfg: TrainConfig, data_cfg: DataConfig) -> FaceDataset:
    """Read the dataset as the run asks: label set, and face crops cut by the detector with --detect-faces."""
    kwargs = dict(contempt=data_cfg.contempt, strict=data_cfg.strict, label_set=cfg.label_set)
    if cfg.detect_faces:
        from .data.facecrop import read_face_crops

        return read_face_crops(data_cfg.data, data_cfg.dataset, **kwargs)
    return read_dataset(data_cfg.data, data_cfg.dataset, **kwargs)


def plan_split(data: FaceDataset, cfg: TrainConfig, keys: np.ndarray, split_file: str | Path | None = None) -> np.ndarray:
    """Role of every sample (train/val/test/...): from a split file, or drawn from the seed (`draw_split`)."""
    if split_file:
        return apply_split_file(read_split_file(split_file), keys, where=str(split_file))
    mask, official = training_mask(data)
    return draw_split(data.labels, mask, data.splits if official else None, val_fraction=cfg.val_fraction,
                      test_fraction=cfg.test_fraction, seed=cfg.seed, limit=cfg.limit)


def score_predictions(y_true: np.ndarray, probs: np.ndarray, label_names: list[str] | tuple[str, ...]) -> dict[str, Any]:
    """Accuracy, macro-F1, per-class scores and confusion (rows = truth): `nasfer.metrics` when present."""
    y_true = np.asarray(y_true, dtype=np.int64)
    probs = np.asarray(probs, dtype=np.float64)
    try:
        from .metrics import classification_report
    except ImportError:
        classification_report = None
    if classification_report is not None:
        return dict(classification_report(y_true, probs, list(label_names)))
    k = len(label_names)
    pred = probs.argmax(1) if len(probs) else np.zeros(0, dtype=np.int64)
    confusion = np.zeros((k, k), dtype=np.int64)
    np.add.at(confusion, (y_true, pred), 1)
    tp = np.diag(confusion).astype(np.float64)
    support, predicted = confusion.sum(1), confusion.sum(0)
    precision = np.divide(tp, predicted, out=np.zeros(k), where=predicted > 0)
    recall = np.divide(tp, support, out=np.zeros(k), where=support > 0)
    f1 = np.divide(2 * precision * recall, precision + recall, out=np.zeros(k), where=(precision + recall) > 0)
    present = support > 0  # classes absent from the truth would pull the macro average to 0 for nothing
    return {
        "n": int(len(y_true)), "labels": list(label_names),
        "accuracy": float((pred == y_true).mean()) if len(y_true) else 0.0,
        "macro_f1": float(f1[present].mean()) if present.any() else 0.0,
        "macro_precision": float(precision[present].mean()) if present.any() else 0.0,
        "macro_recall": float(recall[present].mean()) if present.any() else 0.0,
        "per_class": {name: {"precision": float(precision[i]), "recall": float(recall[i]), "f1": float(f1[i]),
                             "support": int(support[i])} for i, name in enumerate(label_names)},
        "confusion": confusion.tolist(),
    }


def memory_format_for(model: nn.Module) -> torch.memory_format:
    """channels_last for plain conv nets (1.3-1.7x faster training here); contiguous for grouped convs.

    torch 2.13's CPU backward of depthwise (grouped) convolutions in channels_last crashed the process
    (segfault / "double free or corruption") on mini-Xception within the first FER2013 epoch.
    """
    grouped = any(isinstance(m, nn.Conv2d) and m.groups > 1 for m in model.modules())
    return torch.contiguous_format if grouped else torch.channels_last


@torch.no_grad()
def evaluate_model(model: nn.Module, images: np.ndarray | torch.Tensor, preprocessing: Preprocessing,
                   batch_size: int = 256, tta: bool = False, device: str = "cpu") -> np.ndarray:
    """Softmax probabilities (N, K) for uint8 crops (N, S, S); `tta` averages with the mirror image."""
    model.eval()
    images = torch.as_tensor(np.asarray(images))
    out = []
    for start in range(0, len(images), batch_size):
        x = normalize_tensor(images[start:start + batch_size], preprocessing).to(device)
        probs = F.softmax(model(x), dim=1)
        if tta:
            probs = 0.5 * (probs + F.softmax(model(torch.flip(x, dims=[3])), dim=1))
        out.append(probs.cpu())
    return torch.cat(out).numpy() if out else np.zeros((0, 0), dtype=np.float32)


def build_model(cfg: TrainConfig, num_classes: int) -> tuple[nn.Module, str, dict[str, Any]]:
    """(model, registered name, kwargs) from --arch or --genotype."""
    kwargs: dict[str, Any] = {"num_classes": num_classes, "in_channels": 1}
    if cfg.genotype:  # a NASNet genotype or a macro-space spec (nasfer search's best_arch.json)
        from .nas.space import model_from_file

        name, arch = model_from_file(cfg.genotype)
        kwargs.update(arch)
    else:
        name = cfg.arch
    if cfg.width:
        kwargs["width" if not name.startswith("nasnet") else "F"] = cfg.width
    if cfg.drop_path and name.startswith("nasnet"):
        kwargs["drop_path"] = cfg.drop_path
    return create_model(name, **kwargs), name, kwargs


def make_ema(model: nn.Module, decay: float) -> torch.optim.swa_utils.AveragedModel | None:
    """Exponential moving average of the weights and buffers (torch's AveragedModel), or None when decay is 0.

    After each optimizer step, ema = decay * ema + (1 - decay) * weights (Polyak & Juditsky, 1992);
    BatchNorm running statistics are averaged the same way (use_buffers=True).
    """
    if not decay:
        return None
    if not 0.0 < decay < 1.0:
        raise ValueError(f"--ema-decay must be in (0, 1), got {decay}")
    from torch.optim.swa_utils import AveragedModel, get_ema_multi_avg_fn

    return AveragedModel(model, multi_avg_fn=get_ema_multi_avg_fn(decay), use_buffers=True)


# ---------------------------------------------------------------------------- the loop


class Trainer:
    """One training run in one directory; `run()` resumes from `last.pt` when it exists."""

    def __init__(self, cfg: TrainConfig, data_cfg: DataConfig, *, dataset: FaceDataset | None = None,
                 progress: bool = True):
        self.cfg = apply_preset(cfg)
        self.data_cfg = data_cfg
        self.out = Path(self.cfg.out)
        self.progress = progress
        self.preprocessing = Preprocessing()
        if self.cfg.threads:
            torch.set_num_threads(self.cfg.threads)
        if self.cfg.freeze_epochs and not self.cfg.init_from:
            raise ValueError("--freeze-epochs freezes a pretrained backbone: it needs --init-from")
        if self.cfg.init_from:
            from .finetune import check_init_path

            check_init_path(self.cfg.init_from)
        data = dataset if dataset is not None else load_dataset(self.cfg, data_cfg)
        self.label_names = data.label_names
        self.skipped = len(data.skipped)
        self.data_notes = list(data.notes)
        if self.progress:
            for note in self.data_notes:
                print(f"data: {note}", flush=True)
        self.keys = sample_keys(data.sources, data_cfg.data)
        split_file = self.cfg.split_file
        if not split_file and (self.out / "last.pt").exists() and (self.out / "splits.json").exists():
            split_file = self.out / "splits.json"  # resuming: the split this run started with
        self.roles = plan_split(data, self.cfg, self.keys, split_file)
        fit_idx, val_idx = np.flatnonzero(self.roles == TRAIN), np.flatnonzero(self.roles == VAL)
        if len(val_idx) == 0:
            raise DataError("validation split is empty: use a larger dataset or --val-fraction")
        if len(fit_idx) == 0:
            raise DataError("training split is empty: use a larger dataset or smaller --val-fraction/--test-fraction")
        test_idx = np.flatnonzero(np.char.lower(self.roles.astype(str)) == TEST)  # our draw, or a folder named test
        self.train_x = torch.from_numpy(data.images[fit_idx]).unsqueeze(1)
        self.train_y = torch.from_numpy(data.labels[fit_idx])
        self.val_x = data.images[val_idx]
        self.val_y = data.labels[val_idx]
        self.test_x, self.test_y, self.test_keys = data.images[test_idx], data.labels[test_idx], self.keys[test_idx]
        torch.manual_seed(self.cfg.seed)
        self.head_params: list[str] | None = None  # set when fine-tuning
        self.transfer: dict[str, Any] | None = None
        if self.cfg.init_from:
            from .finetune import start_from

            start = start_from(self.cfg.init_from, self.label_names, drop_path=self.cfg.drop_path)
            self.model, self.model_name, self.model_kwargs = start.model, start.model_name, start.model_kwargs
            self.preprocessing, self.head_params = start.preprocessing, start.head_params
            self.transfer = start.report.to_dict()
            if self.progress:
                print(start.report.summary(), flush=True)
        else:
            self.model, self.model_name, self.model_kwargs = build_model(self.cfg, len(self.label_names))
        self.memory_format = memory_format_for(self.model)
        self.model.to(self.cfg.device, memory_format=self.memory_format)
        self.augment = Augment(self.cfg.crop_padding, self.cfg.flip, self.cfg.rotation, self.cfg.scale, self.cfg.cutout,
                               self.cfg.random_erasing)
        self.ema = make_ema(self.model, self.cfg.ema_decay)
        weights = class_weights(data.labels[fit_idx], len(self.label_names), self.cfg.class_weighting)
        self.loss_fn = nn.CrossEntropyLoss(
            weight=None if weights is None else weights.to(self.cfg.device), label_smoothing=self.cfg.label_smoothing)
        self.steps_per_epoch = math.ceil(len(self.train_y) / self.cfg.batch_size)
        self.total_steps = self.steps_per_epoch * self.cfg.epochs
        params: Any = self.model.parameters()
        if self.head_params is not None:
            from .finetune import param_groups

            params = param_groups(self.model, self.head_params, self.cfg.lr, self.cfg.backbone_lr_mult)
        if self.cfg.optimizer == "sgd":
            self.optimizer = torch.optim.SGD(params, lr=self.cfg.lr, momentum=self.cfg.momentum,
                                             weight_decay=self.cfg.weight_decay, nesterov=True)
        else:
            self.optimizer = torch.optim.AdamW(params, lr=self.cfg.lr, weight_decay=self.cfg.weight_decay)
        self.scheduler = torch.optim.lr_scheduler.LambdaLR(
            self.optimizer, lambda s: lr_multiplier(s, self.total_steps, self.steps_per_epoch, self.cfg))
        self.history: list[dict[str, float]] = []
        self.best_val = -1.0
        self.start_epoch = 0

    # -- state
    def _checkpoint(self, epoch: int, val_acc: float, weights: str = "raw") -> dict[str, Any]:
        """Checkpoint of the raw weights, or of the EMA weights (`weights="ema"`); last.pt carries both."""
        model = self.ema.module if weights == "ema" else self.model
        extra: dict[str, Any] = {"weights": weights}
        if self.ema is not None:
            extra["ema_state_dict"] = {k: v.detach().cpu() for k, v in self.ema.state_dict().items()}
        return make_checkpoint(
            model=model, model_name=self.model_name, model_kwargs=self.model_kwargs,
            labels=self.label_names, preprocessing=self.preprocessing,
            config={"train": to_dict(self.cfg), "data": to_dict(self.data_cfg)},
            epoch=epoch, metrics={"val_accuracy": val_acc, "best_val_accuracy": max(self.best_val, val_acc)},
            history=self.history, optimizer=self.optimizer.state_dict(), scheduler=self.scheduler.state_dict(),
            n_train=int(len(self.train_y)), n_val=int(len(self.val_y)), skipped=self.skipped,
            **({"finetune": self.transfer} if self.transfer else {}), **extra,
        )

    def _resume(self) -> None:
        last = self.out / "last.pt"
        if not last.exists():
            return
        ckpt = load_checkpoint(last)
        if ckpt["model"]["name"] != self.model_name or ckpt["model"]["kwargs"] != self.model_kwargs:
            raise ModelError(f"{last} holds a different model ({ckpt['model']['name']}); use a new --out")
        self.model.load_state_dict(ckpt["state_dict"])
        if self.ema is not None:
            if "ema_state_dict" not in ckpt:
                raise ModelError(f"{last} was trained without --ema-decay; resume it without, or use a new --out")
            self.ema.load_state_dict(ckpt["ema_state_dict"])
        self.optimizer.load_state_dict(ckpt["optimizer"])
        self.scheduler.load_state_dict(ckpt["scheduler"])
        self.history = list(ckpt.get("history", []))
        self.best_val = float(ckpt["metrics"]["best_val_accuracy"])
        self.start_epoch = int(ckpt["epoch"]) + 1

    # -- one epoch
    def _train_epoch(self, epoch: int) -> tuple[float, float]:
        from tqdm import tqdm

        gen = torch.Generator().manual_seed(self.cfg.seed * 100_003 + epoch)
        torch.manual_seed(self.cfg.seed * 100_003 + epoch)  # dropout / drop-path
        order = torch.randperm(len(self.train_y), generator=gen)
        self.model.train()
        if self.head_params is not None:
            from .finetune import set_backbone_frozen

            set_backbone_frozen(self.model, self.head_params, frozen=epoch < self.cfg.freeze_epochs)
        total_loss = total_correct = seen = 0.0
        bar = tqdm(range(self.steps_per_epoch), desc=f"epoch {epoch + 1}/{self.cfg.epochs}",
                   disable=not (self.progress and sys.stderr.isatty()), leave=False, unit="batch")
        for step in bar:
            idx = order[step * self.cfg.batch_size:(step + 1) * self.cfg.batch_size]
            x = self.augment(self.train_x[idx], gen)
            x = ((x * (1.0 / 255.0)) - self.preprocessing.mean) / self.preprocessing.std
            y = self.train_y[idx]
            x, y = x.to(self.cfg.device, memory_format=self.memory_format), y.to(self.cfg.device)
            with torch.autocast(torch.device(self.cfg.device).type, dtype=torch.bfloat16,
                                enabled=self.cfg.precision == "bf16"):
                loss, logits = self._loss(x, y, gen)
            self.optimizer.zero_grad(set_to_none=True)
            loss.backward()
            self.optimizer.step()
            self.scheduler.step()
            if self.ema is not None:
                self.ema.update_parameters(self.model)
            n = len(y)
            total_loss += loss.item() * n
            total_correct += (logits.argmax(1) == y).sum().item()
            seen += n
            bar.set_postfix(loss=f"{total_loss / seen:.3f}", acc=f"{total_correct / seen:.3f}")
        return total_loss / seen, total_correct / seen

    def _loss(self, x: torch.Tensor, y: torch.Tensor, gen: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
        lam = 1.0
        if self.cfg.mixup > 0:
            lam = float(np.random.default_rng(int(torch.randint(0, 2**31, (1,), generator=gen))).beta(
                self.cfg.mixup, self.cfg.mixup))
            perm = torch.randperm(len(y), generator=gen).to(x.device)
            x = lam * x + (1 - lam) * x[perm]
        out = self.model(x)
        logits, aux = (out if isinstance(out, tuple) else (out, None))
        loss = self.loss_fn(logits, y)
        if lam < 1.0:
            loss = lam * loss + (1 - lam) * self.loss_fn(logits, y[perm])
        if aux is not None:
            loss = loss + 0.4 * self.loss_fn(aux, y)
        return loss.float(), logits

    def _validate(self, model: nn.Module | None = None) -> tuple[float, float]:
        """(loss, accuracy) of `model` (default: the raw weights) on the validation split."""
        probs = evaluate_model(model or self.model, self.val_x, self.preprocessing, tta=self.cfg.tta, device=self.cfg.device)
        y = torch.from_numpy(self.val_y)
        p = torch.from_numpy(probs).clamp_min(1e-8)
        return float(F.nll_loss(p.log(), y).item()), float((p.argmax(1) == y).float().mean().item())

    def run(self) -> Path:
        self.out.mkdir(parents=True, exist_ok=True)
        self._resume()
        if self.progress:
            state = f"resuming after epoch {self.start_epoch}" if self.start_epoch else "new run"
            print(f"run directory {self.out} ({state}); checkpoints every epoch: if this run is interrupted, "
                  f"the same command continues it", flush=True)
        (self.out / "config.json").write_text(json.dumps(
            {"train": to_dict(self.cfg), "data": to_dict(self.data_cfg), "model": self.model_name,
             "model_kwargs": self.model_kwargs, "labels": list(self.label_names),
             **({"finetune": self.transfer} if self.transfer else {})}, indent=2))
        write_split_file(self.out / "splits.json", self.keys, self.roles, data=self.data_cfg.data,
                         seed=self.cfg.seed, val_fraction=self.cfg.val_fraction,
                         test_fraction=self.cfg.test_fraction, reused=self.cfg.split_file)
        for epoch in range(self.start_epoch, self.cfg.epochs):
            started = time.perf_counter()
            train_loss, train_acc = self._train_epoch(epoch)
            val_loss, val_acc = self._validate()
            record = {"epoch": epoch + 1, "train_loss": train_loss, "train_acc": train_acc, "val_loss": val_loss,
                      "val_acc": val_acc}
            weights, score = "raw", val_acc
            if self.ema is not None:
                record["val_loss_ema"], record["val_acc_ema"] = self._validate(self.ema.module)
                if record["val_acc_ema"] >= val_acc:
                    weights, score = "ema", record["val_acc_ema"]
            seconds = time.perf_counter() - started
            self.history.append({**record, "lr": self.optimizer.param_groups[0]["lr"], "seconds": seconds,
                                 "images_per_second": len(self.train_y) / seconds})
            improved = score > self.best_val
            if improved:
                save_checkpoint(self.out / "best.pt", self._checkpoint(epoch, score, weights))
            self.best_val = max(self.best_val, score)
            save_checkpoint(self.out / "last.pt", self._checkpoint(epoch, val_acc))
            self._write_history()
            if self.progress:
                ema = f"  ema acc {record['val_acc_ema']:.3f}" if self.ema is not None else ""
                print(f"epoch {epoch + 1}/{self.cfg.epochs}  train loss {train_loss:.3f} acc {train_acc:.3f}  "
                      f"val loss {val_loss:.3f} acc {val_acc:.3f}{ema}{'  *best (' + weights + ')' if improved else ''}"
                      f"  ({seconds:.0f}s)", flush=True)
        if len(self.test_y):
            self._write_test_report()
        return self.out

    # -- the held-out test part (datasets without an official split, or a split file naming one)
    def test_probabilities(self) -> np.ndarray:
        """Probabilities of the best checkpoint on the held-out test images (N_test, K)."""
        from .checkpoint import load_model

        if not len(self.test_y):
            return np.zeros((0, len(self.label_names)), dtype=np.float32)
        model, ckpt = load_model(self.out / "best.pt")
        return evaluate_model(model.to(self.cfg.device), self.test_x, self.preprocessing, tta=self.cfg.tta,
                              device=self.cfg.device)

    def _write_test_report(self) -> dict[str, Any]:
        probs = self.test_probabilities()
        report = score_predictions(self.test_y, probs, self.label_names)
        pred = probs.argmax(1)
        report = {"split": "test", "checkpoint": "best.pt", **report, "predictions": [
            {"image": str(key), "label": self.label_names[int(y)], "predicted": self.label_names[int(p)],
             "confidence": round(float(probs[i, p]), 4)}
            for i, (key, y, p) in enumerate(zip(self.test_keys.tolist(), self.test_y, pred))]}
        (self.out / "test.json").write_text(json.dumps(report, indent=1))
        if self.progress:
            print(f"test: accuracy {report['accuracy']:.3f}  macro-F1 {report['macro_f1']:.3f} on "
                  f"{len(self.test_y)} held-out images -> {self.out / 'test.json'}", flush=True)
        return report

    def _write_history(self) -> None:
        (self.out / "history.json").write_text(json.dumps(self.history, indent=2))
        from .plots import plot_training_curves

        plot_training_curves(self.history, self.out / "curves.png")


def fit(cfg: TrainConfig, data_cfg: DataConfig, *, dataset: FaceDataset | None = None, progress: bool = True) -> Path:
    """Train (or resume) and return the run directory holding best.pt, last.pt, history.json, curves.png."""
    return Trainer(cfg, data_cfg, dataset=dataset, progress=progress).run()


__all__ = ["fit", "Trainer", "evaluate_model", "lr_multiplier", "class_weights", "training_split", "training_mask",
           "load_dataset", "plan_split", "score_predictions"]
