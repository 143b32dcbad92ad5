"""`fit()`: train a registered model (or a NASNet from a genotype) on a face dataset.

Resumable by construction: every epoch draws its shuffling, augmentation and dropout from RNGs
seeded by (seed, epoch), and `last.pt` holds model, optimizer and scheduler state, so a run
killed after epoch k and restarted gives the same weights as one that was never interrupted.
"""

from __future__ import annotations

import json
import math
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from .checkpoint import load_checkpoint, make_checkpoint, save_checkpoint
from .config import DataConfig, TrainConfig, apply_preset, to_dict
from .data import FaceDataset, read_dataset, stratified_split
from .data.augment import Augment
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
    present = {s.lower() for s in data.split_names()}
    for name in TRAIN_SPLIT_NAMES:
        if name in present:
            return data.select_split(name)
    if present == {"all"}:
        return data
    raise DataError(f"no Training/train split among {', '.join(data.split_names())}")


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
    if cfg.genotype:
        from .nas.genotype import Genotype

        name = "nasnet"
        kwargs["genotype"] = Genotype.load(cfg.genotype).to_dict()
    else:
        name = cfg.arch
    if cfg.width:
        kwargs["width" if not name.startswith("nasnet") else "F"] = cfg.width
    if cfg.drop_path and name.startswith("nasnet"):
        kwargs["drop_path"] = cfg.drop_path
    return create_model(name, **kwargs), name, kwargs


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
        data = dataset if dataset is not None else read_dataset(
            data_cfg.data, data_cfg.dataset, contempt=data_cfg.contempt, strict=data_cfg.strict)
        self.label_names = data.label_names
        self.skipped = len(data.skipped)
        train = training_split(data)
        if 0 < self.cfg.limit < len(train):
            _, keep = stratified_split(train.labels, self.cfg.limit / len(train), self.cfg.seed)
            train = train.subset(keep)
        fit_idx, val_idx = stratified_split(train.labels, self.cfg.val_fraction, self.cfg.seed)
        if len(val_idx) == 0:
            raise DataError("validation split is empty: use a larger dataset or --val-fraction")
        self.train_x = torch.from_numpy(train.images[fit_idx]).unsqueeze(1)
        self.train_y = torch.from_numpy(train.labels[fit_idx])
        self.val_x = train.images[val_idx]
        self.val_y = train.labels[val_idx]
        torch.manual_seed(self.cfg.seed)
        self.model, self.model_name, self.model_kwargs = build_model(self.cfg, len(self.label_names))
        self.model.to(self.cfg.device, memory_format=torch.channels_last)
        self.augment = Augment(self.cfg.crop_padding, self.cfg.flip, self.cfg.rotation, self.cfg.scale, self.cfg.cutout)
        weights = class_weights(train.labels[fit_idx], len(self.label_names), self.cfg.class_weighting)
        self.loss_fn = nn.CrossEntropyLoss(
            weight=None if weights is None else weights.to(self.cfg.device), label_smoothing=self.cfg.label_smoothing)
        self.steps_per_epoch = math.ceil(len(self.train_y) / self.cfg.batch_size)
        self.total_steps = self.steps_per_epoch * self.cfg.epochs
        if self.cfg.optimizer == "sgd":
            self.optimizer = torch.optim.SGD(self.model.parameters(), lr=self.cfg.lr, momentum=self.cfg.momentum,
                                             weight_decay=self.cfg.weight_decay, nesterov=True)
        else:
            self.optimizer = torch.optim.AdamW(self.model.parameters(), lr=self.cfg.lr, weight_decay=self.cfg.weight_decay)
        self.scheduler = torch.optim.lr_scheduler.LambdaLR(
            self.optimizer, lambda s: lr_multiplier(s, self.total_steps, self.steps_per_epoch, self.cfg))
        self.history: list[dict[str, float]] = []
        self.best_val = -1.0
        self.start_epoch = 0

    # -- state
    def _checkpoint(self, epoch: int, val_acc: float) -> dict[str, Any]:
        return make_checkpoint(
            model=self.model, model_name=self.model_name, model_kwargs=self.model_kwargs,
            labels=self.label_names, preprocessing=self.preprocessing,
            config={"train": to_dict(self.cfg), "data": to_dict(self.data_cfg)},
            epoch=epoch, metrics={"val_accuracy": val_acc, "best_val_accuracy": max(self.best_val, val_acc)},
            history=self.history, optimizer=self.optimizer.state_dict(), scheduler=self.scheduler.state_dict(),
            n_train=int(len(self.train_y)), n_val=int(len(self.val_y)), skipped=self.skipped,
        )

    def _resume(self) -> None:
        last = self.out / "last.pt"
        if not last.exists():
            return
        ckpt = load_checkpoint(last)
        if ckpt["model"]["name"] != self.model_name or ckpt["model"]["kwargs"] != self.model_kwargs:
            raise ModelError(f"{last} holds a different model ({ckpt['model']['name']}); use a new --out")
        self.model.load_state_dict(ckpt["state_dict"])
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
        total_loss = total_correct = seen = 0.0
        bar = tqdm(range(self.steps_per_epoch), desc=f"epoch {epoch + 1}/{self.cfg.epochs}",
                   disable=not self.progress, leave=False, unit="batch")
        for step in bar:
            idx = order[step * self.cfg.batch_size:(step + 1) * self.cfg.batch_size]
            x = self.augment(self.train_x[idx], gen)
            x = ((x * (1.0 / 255.0)) - self.preprocessing.mean) / self.preprocessing.std
            y = self.train_y[idx]
            x, y = x.to(self.cfg.device, memory_format=torch.channels_last), y.to(self.cfg.device)
            with torch.autocast(torch.device(self.cfg.device).type, dtype=torch.bfloat16,
                                enabled=self.cfg.precision == "bf16"):
                loss, logits = self._loss(x, y, gen)
            self.optimizer.zero_grad(set_to_none=True)
            loss.backward()
            self.optimizer.step()
            self.scheduler.step()
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

    def _validate(self) -> tuple[float, float]:
        probs = evaluate_model(self.model, self.val_x, self.preprocessing, tta=self.cfg.tta, device=self.cfg.device)
        y = torch.from_numpy(self.val_y)
        p = torch.from_numpy(probs).clamp_min(1e-8)
        return float(F.nll_loss(p.log(), y).item()), float((p.argmax(1) == y).float().mean().item())

    def run(self) -> Path:
        self.out.mkdir(parents=True, exist_ok=True)
        self._resume()
        (self.out / "config.json").write_text(json.dumps(
            {"train": to_dict(self.cfg), "data": to_dict(self.data_cfg), "model": self.model_name,
             "model_kwargs": self.model_kwargs, "labels": list(self.label_names)}, indent=2))
        for epoch in range(self.start_epoch, self.cfg.epochs):
            started = time.perf_counter()
            train_loss, train_acc = self._train_epoch(epoch)
            val_loss, val_acc = self._validate()
            seconds = time.perf_counter() - started
            self.history.append({
                "epoch": epoch + 1, "train_loss": train_loss, "train_acc": train_acc, "val_loss": val_loss,
                "val_acc": val_acc, "lr": self.optimizer.param_groups[0]["lr"], "seconds": seconds,
                "images_per_second": len(self.train_y) / seconds,
            })
            improved = val_acc > self.best_val
            ckpt = self._checkpoint(epoch, val_acc)
            self.best_val = max(self.best_val, val_acc)
            if improved:
                save_checkpoint(self.out / "best.pt", ckpt)
            save_checkpoint(self.out / "last.pt", ckpt)
            self._write_history()
            if self.progress:
                print(f"epoch {epoch + 1}/{self.cfg.epochs}  train loss {train_loss:.3f} acc {train_acc:.3f}  "
                      f"val loss {val_loss:.3f} acc {val_acc:.3f}{'  *best' if improved else ''}  ({seconds:.0f}s)",
                      flush=True)
        return self.out

    def _write_history(self) -> None:
        (self.out / "history.json").write_text(json.dumps(self.history, indent=2))
        from .plots import plot_training_curves

        plot_training_curves(self.history, self.out / "curves.png")


def fit(cfg: TrainConfig, data_cfg: DataConfig, *, dataset: FaceDataset | None = None, progress: bool = True) -> Path:
    """Train (or resume) and return the run directory holding best.pt, last.pt, history.json, curves.png."""
    return Trainer(cfg, data_cfg, dataset=dataset, progress=progress).run()


__all__ = ["fit", "Trainer", "evaluate_model", "lr_multiplier", "class_weights", "training_split"]
