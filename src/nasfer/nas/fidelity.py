"""Fidelities: how cheaply a child is trained before it is scored, and the one function that does it.

A fidelity is written `<n>s@<px>` (n optimizer steps on faces resized to px) or `<n>e@<px>` (n epochs):
`150s@24` is the search's reward proxy, the cheapest whose ranking agrees with the reference (20 epochs at
48 px with `nasfer train`'s recipe) at Kendall tau >= 0.6; `1e@48`, `3e@32`, `3e@48` cost more and rank
closer to it (tau over 15 architectures: 0.62, 0.71, 0.82, 0.85; `benchmarks/proxy_calibration.py`,
`benchmarks/results/proxy_calibration.json`).

`train_child` trains a freshly initialised network with `nasfer train`'s standard recipe compressed
to the fidelity's length: AdamW (lr 3e-3, weight decay 5e-4), one-cycle schedule
(`nasfer.train.lr_multiplier`), label smoothing 0.1, batch 128, the standard augmentation scaled to the
image size for epoch fidelities (none for step fidelities: in a few hundred steps it only slows
learning, measured on FER2013), the memory format `nasfer train` picks for the precision (`train.memory_format_for`),
and inputs normalised by `nasfer.preprocessing.normalize_tensor`. It returns validation accuracy
(argmax, no TTA). Every child of a search gets the same seed, hence the same initialisation stream,
batches and augmentations (common random numbers), so seed noise is shared rather than ranked.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from typing import Any

class BudgetExceeded(RuntimeError):
    """Raised by `train_child` when its `deadline` passes before training ends."""


_PATTERN = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([se])\s*@\s*(\d+)\s*$")


@dataclass(frozen=True)
class Fidelity:
    """`amount` steps (unit "s") or epochs (unit "e") at `size` px. Parse with `Fidelity.parse("3e@48")`."""

    amount: float
    unit: str
    size: int

    @classmethod
    def parse(cls, text: str) -> "Fidelity":
        match = _PATTERN.match(str(text))
        if not match:
            raise ValueError(f"fidelity {text!r}: write <steps>s@<px> (e.g. 150s@24) or <epochs>e@<px> (e.g. 3e@48)")
        amount, unit, size = float(match.group(1)), match.group(2), int(match.group(3))
        if amount <= 0 or not 8 <= size <= 96 or (unit == "s" and amount != int(amount)):
            raise ValueError(f"fidelity {text!r}: needs a positive (whole, for steps) amount and 8 <= px <= 96")
        return cls(amount, unit, size)

    @property
    def name(self) -> str:
        amount = int(self.amount) if self.amount == int(self.amount) else self.amount
        return f"{amount}{self.unit}@{self.size}"

    def steps(self, n_train: int, batch_size: int) -> int:
        if self.unit == "s":
            return int(self.amount)
        return max(1, math.ceil(self.amount * n_train / batch_size))

    def cost(self, n_train: int, batch_size: int = 128) -> float:
        """Relative compute: images seen x pixels per image (for budgeting before any timing exists)."""
        return self.steps(n_train, batch_size) * batch_size * self.size ** 2

    def __str__(self) -> str:
        return self.name


@dataclass(frozen=True)
class Recipe:
    """`nasfer train`'s defaults, the fields a child uses."""

    lr: float = 3e-3
    weight_decay: float = 5e-4
    batch_size: int = 128
    label_smoothing: float = 0.1
    precision: str = "auto"  # nasfer.training.precision.PRECISIONS


def train_child(name: str, kwargs: dict[str, Any], data, fidelity: Fidelity, *, seed: int = 0,
                recipe: Recipe = Recipe(), deadline: float | None = None) -> float:
    """Train `create_model(name, **kwargs)` at `fidelity` on `data` (`nasfer.nas.data.SearchData`);
    validation accuracy in [0, 1]. Raises BudgetExceeded once `time.monotonic()` passes `deadline`."""
    import time

    import torch
    import torch.nn.functional as F

    from ..config import TrainConfig
    from ..data.augment import Augment
    from ..models import create_model
    from ..preprocessing import Preprocessing, normalize_tensor
    from ..train import lr_multiplier, memory_format_for
    from ..training.precision import resolve_precision

    spec = Preprocessing()
    bf16 = resolve_precision(recipe.precision, "cpu") == "bf16"
    train_x, val_x = data.at(fidelity.size)
    train_y, val_y = torch.from_numpy(data.train_y), torch.from_numpy(data.val_y)
    with torch.random.fork_rng():
        torch.manual_seed(seed)
        model = create_model(name, num_classes=len(data.label_names), in_channels=1, **kwargs)
        fmt = memory_format_for(model, "bf16" if bf16 else "fp32")
        model = model.to(memory_format=fmt)
        generator = torch.Generator().manual_seed(seed)
        augment = None
        if fidelity.unit == "e":
            augment = Augment(crop_padding=max(1, round(4 * fidelity.size / 48)), flip=True, rotation=10.0, scale=0.1)
        batch = min(recipe.batch_size, len(train_y))
        steps = fidelity.steps(len(train_y), batch)
        per_epoch = max(1, len(train_y) // batch)
        schedule = TrainConfig(schedule="onecycle")
        optimizer = torch.optim.AdamW(model.parameters(), lr=recipe.lr, weight_decay=recipe.weight_decay)
        order, pos = torch.randperm(len(train_y), generator=generator), 0
        model.train()
        for step in range(steps):
            if deadline is not None and time.monotonic() > deadline:
                raise BudgetExceeded(f"stopped after {step} of {steps} steps: the budget ended")
            for group in optimizer.param_groups:
                group["lr"] = recipe.lr * lr_multiplier(step, steps, per_epoch, schedule)
            if pos + batch > len(train_y):
                order, pos = torch.randperm(len(train_y), generator=generator), 0
            idx = order[pos:pos + batch]
            pos += batch
            x = train_x[idx]
            x = augment(x, generator) if augment is not None else x.float()
            x = normalize_tensor(x.clamp(0, 255).round(), spec).contiguous(memory_format=fmt)
            with torch.autocast("cpu", dtype=torch.bfloat16, enabled=bf16):
                out = model(x)
                logits = out[0] if isinstance(out, tuple) else out
                loss = F.cross_entropy(logits.float(), train_y[idx], label_smoothing=recipe.label_smoothing)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
        model.eval()
        correct = 0
        with torch.no_grad():
            for start in range(0, len(val_y), 256):
                x = normalize_tensor(val_x[start:start + 256], spec).contiguous(memory_format=fmt)
                correct += int((model(x).argmax(1) == val_y[start:start + 256]).sum())
    return correct / len(val_y)
