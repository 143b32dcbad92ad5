"""The pieces of one optimisation step and of validation, shared by one process and data-parallel runs.

Every epoch draws its image order, augmentations, mixup and dropout from RNGs seeded by (seed, epoch), so a
resumed run repeats an uninterrupted one exactly. A step works on a GLOBAL batch of --batch-size images:
one process takes all of it; with N data-parallel processes every rank draws the same global batch and
augmentation and keeps positions rank, rank+N, ... (`nasfer.distributed.Context.shard`), so N processes
see exactly the batches one process sees.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from ..data.augment import Augment
from ..distill import distillation_loss
from ..preprocessing import Preprocessing, normalize_tensor


def epoch_order(n: int, seed: int, epoch: int, rank: int = 0) -> tuple[torch.Tensor, torch.Generator]:
    """(permutation int64 (n,), generator for the epoch's augmentation and mixup draws), the same on every rank.

    Also seeds torch's global RNG (dropout, drop-path) from (seed, epoch, rank): each data-parallel rank
    draws its own masks for its part of the batch (rank 0 draws what one process draws).
    """
    gen = torch.Generator().manual_seed(seed * 100_003 + epoch)
    torch.manual_seed(seed * 100_003 + epoch + 1_000_003 * rank)
    return torch.randperm(n, generator=gen), gen


@dataclass
class Batch:
    """One process's part of a global batch, normalised, on the training device.

    x: float (b, 1, S, S); y: int64 (b,); y_mix / lam: mixup partner labels (b,) and weight (1.0: no mixup);
    soft: teacher probabilities at the distillation temperature, float (b, K), already mixed; None without.
    """

    x: torch.Tensor
    y: torch.Tensor
    y_mix: torch.Tensor | None = None
    lam: float = 1.0
    soft: torch.Tensor | None = None


def make_batch(idx: torch.Tensor, train_x: torch.Tensor, train_y: torch.Tensor, augment: Augment,
               gen: torch.Generator, preprocessing: Preprocessing, *, mixup: float = 0.0, teacher: Any = None,
               shard: slice = slice(None), device: str = "cpu",
               memory_format: torch.memory_format = torch.contiguous_format) -> Batch:
    """Augment, normalise and mix the global batch `idx` (positions in the training part); keep `shard` of it.

    Teacher targets (`teacher.targets(idx, flipped)`) are the cached outputs for the un-augmented image,
    or for its mirror where the augmentation flipped it; shifts, rotations, zoom and erasing keep the target.
    Mixup (Zhang et al. 2018) mixes images, labels and teacher targets with the same weight and partner.
    """
    x, flipped = augment.apply(train_x[idx], gen)
    x = normalize_tensor(x, preprocessing)
    y = train_y[idx]
    soft = teacher.targets(idx, flipped) if teacher is not None else None
    y_mix, lam = None, 1.0
    if mixup > 0:
        lam = float(np.random.default_rng(int(torch.randint(0, 2**31, (1,), generator=gen))).beta(mixup, mixup))
        perm = torch.randperm(len(y), generator=gen)
        x = lam * x + (1 - lam) * x[perm]
        y_mix = y[perm][shard].to(device)
        if soft is not None:
            soft = lam * soft + (1 - lam) * soft[perm]
    return Batch(x=x[shard].to(device, memory_format=memory_format), y=y[shard].to(device), y_mix=y_mix, lam=lam,
                 soft=None if soft is None else soft[shard].to(device))


def batch_loss(model: nn.Module, batch: Batch, loss_fn: nn.Module, *, distill_alpha: float = 0.0,
               temperature: float = 1.0) -> tuple[torch.Tensor, torch.Tensor]:
    """(scalar float32 loss, logits (b, K)) of one batch.

    Hard part: `loss_fn` on the labels (mixed as lam * CE(y) + (1 - lam) * CE(y_mix)), plus 0.4 x the
    auxiliary head's loss where the model has one. With teacher targets, the loss is
    (1 - alpha) * hard + alpha * T^2 * KL(teacher_T || student_T) (Hinton, Vinyals & Dean 2015, "Distilling
    the Knowledge in a Neural Network"; T^2 keeps the soft gradients' scale independent of T).
    """
    out = model(batch.x)
    logits, aux = (out if isinstance(out, tuple) else (out, None))
    loss = loss_fn(logits, batch.y)
    if batch.lam < 1.0:
        loss = batch.lam * loss + (1 - batch.lam) * loss_fn(logits, batch.y_mix)
    if aux is not None:
        loss = loss + 0.4 * loss_fn(aux, batch.y)
    if batch.soft is not None:
        loss = (1 - distill_alpha) * loss + distill_alpha * distillation_loss(logits, batch.soft, temperature)
    return loss.float(), logits


@torch.no_grad()
def evaluate_model(model: nn.Module, images: np.ndarray | torch.Tensor, preprocessing: Preprocessing,
                   batch_size: int = 256, tta: bool = False, device: str = "cpu") -> np.ndarray:
    """Softmax probabilities float32 (N, K) for uint8 crops (N, S, S); `tta` averages with the mirror image.

    Puts `model` in eval mode. N = 0 gives an array of shape (0, 0).
    """
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


def validation_sums(model: nn.Module, images: np.ndarray, labels: np.ndarray, preprocessing: Preprocessing, *,
                    tta: bool, device: str) -> tuple[float, float, float]:
    """(summed negative log-likelihood, number correct, number of images) over uint8 crops (n, S, S).

    Sums, not means, so data-parallel ranks can add theirs (each validates a shard) into the global figures.
    """
    if len(labels) == 0:
        return 0.0, 0.0, 0.0
    probs = evaluate_model(model, images, preprocessing, tta=tta, device=device)
    y = torch.from_numpy(np.asarray(labels))
    p = torch.from_numpy(probs).clamp_min(1e-8)
    return (float(F.nll_loss(p.log(), y, reduction="sum").item()), float((p.argmax(1) == y).sum().item()),
            float(len(y)))


__all__ = ["epoch_order", "Batch", "make_batch", "batch_loss", "evaluate_model", "validation_sums"]
