"""Training step 4: optimizer, learning-rate schedule, weight EMA and the loss's class weights."""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from torch import nn

from ..config import TrainConfig


def lr_multiplier(step: int, total_steps: int, steps_per_epoch: int, cfg: TrainConfig) -> float:
    """Learning-rate factor (of --lr) at optimizer step `step` (0-based) for the configured schedule.

    onecycle (Smith & Topin 2017): 25% linear warm-up from lr/25, cosine anneal to lr/1e4; cosine
    (Loshchilov & Hutter 2017, no restarts): from lr to 0; step: times --step-gamma after each epoch in
    --step-milestones; constant: 1.
    """
    progress = step / max(1, total_steps)
    if cfg.schedule == "constant":
        return 1.0
    if cfg.schedule == "cosine":
        return 0.5 * (1.0 + math.cos(math.pi * progress))
    if cfg.schedule == "step":
        epoch = step // max(1, steps_per_epoch)
        return cfg.step_gamma ** sum(epoch >= m for m in cfg.step_milestones)
    warm = 0.25
    if progress < warm:
        return 1.0 / 25 + (1.0 - 1.0 / 25) * progress / warm
    t = (progress - warm) / (1.0 - warm)
    return 1e-4 + (1.0 - 1e-4) * 0.5 * (1.0 + math.cos(math.pi * t))


def class_weights(labels: np.ndarray, num_classes: int, mode: str) -> torch.Tensor | None:
    """Loss weights float32 (num_classes,) ~ 1/frequency (or its square root), mean 1; None for 'none'."""
    if mode == "none":
        return None
    counts = np.bincount(labels, minlength=num_classes).astype(np.float64)
    inv = 1.0 / np.maximum(counts, 1.0)
    if mode == "sqrt-inverse":
        inv = np.sqrt(inv)
    inv = inv * num_classes / inv.sum()
    return torch.tensor(inv, dtype=torch.float32)


def make_ema(model: nn.Module, decay: float) -> torch.optim.swa_utils.AveragedModel | None:
    """Exponential moving average of the weights and buffers (torch's AveragedModel), or None when decay is 0.

    After each optimizer step, ema = decay * ema + (1 - decay) * weights (Polyak & Juditsky, 1992);
    BatchNorm running statistics are averaged the same way (use_buffers=True). ValueError outside [0, 1).
    """
    if not decay:
        return None
    if not 0.0 < decay < 1.0:
        raise ValueError(f"--ema-decay must be in (0, 1), got {decay}")
    from torch.optim.swa_utils import AveragedModel, get_ema_multi_avg_fn

    return AveragedModel(model, multi_avg_fn=get_ema_multi_avg_fn(decay), use_buffers=True)


@dataclass
class Optimization:
    """What updates the weights: optimizer, per-step LambdaLR schedule, optional EMA, the hard-label loss."""

    optimizer: torch.optim.Optimizer
    scheduler: torch.optim.lr_scheduler.LambdaLR
    ema: torch.optim.swa_utils.AveragedModel | None
    loss_fn: nn.Module
    steps_per_epoch: int
    total_steps: int


def make_optimization(cfg: TrainConfig, model: nn.Module, train_y: torch.Tensor, num_classes: int,
                      head_params: list[str] | None = None) -> Optimization:
    """AdamW (Loshchilov & Hutter 2019) or Nesterov SGD over `model`, stepped once per batch of --batch-size.

    Fine-tuning (`head_params` given): the head at --lr, the backbone at --lr x --backbone-lr-mult.
    Cross-entropy with --label-smoothing and --class-weighting. Call after the model is on its device.
    """
    steps_per_epoch = math.ceil(len(train_y) / cfg.batch_size)
    total_steps = steps_per_epoch * cfg.epochs
    params: Any = model.parameters()
    if head_params is not None:
        from ..finetune import param_groups

        params = param_groups(model, head_params, cfg.lr, cfg.backbone_lr_mult)
    if cfg.optimizer == "sgd":
        optimizer: torch.optim.Optimizer = torch.optim.SGD(
            params, lr=cfg.lr, momentum=cfg.momentum, weight_decay=cfg.weight_decay, nesterov=True)
    else:
        optimizer = torch.optim.AdamW(params, lr=cfg.lr, weight_decay=cfg.weight_decay)
    scheduler = torch.optim.lr_scheduler.LambdaLR(
        optimizer, lambda s: lr_multiplier(s, total_steps, steps_per_epoch, cfg))
    weights = class_weights(train_y.numpy(), num_classes, cfg.class_weighting)
    loss_fn = nn.CrossEntropyLoss(weight=None if weights is None else weights.to(cfg.device),
                                  label_smoothing=cfg.label_smoothing)
    return Optimization(optimizer, scheduler, make_ema(model, cfg.ema_decay), loss_fn, steps_per_epoch, total_steps)


__all__ = ["lr_multiplier", "class_weights", "make_ema", "Optimization", "make_optimization"]
