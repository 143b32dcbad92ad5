"""Evaluators: genotype -> accuracy on held-out data, plus the latency-aware reward (MnasNet).

- `SharedWeights`: trains the supernet on sampled children (`train_step`) and scores a child with the
  shared weights on the next validation batch (`__call__`) or the whole validation part (`full`);
  cheap, as in ENAS.
- `FromScratch`: builds the child as a real NASNet, trains it for a few steps and scores it; the
  original NASNet procedure, far dearer per sample but free of weight-sharing's interference.
- `measure_latency_ms` / `mnas_reward`: acc * (latency / target) ** w.

Batches are drawn from explicit generators and counters kept in `state_dict()`, so a resumed search
sees the same batches an uninterrupted one would. Models and batches are channels-last: on CPU that
makes depthwise convolutions and max pools (most of a cell) about three times faster.
"""

from __future__ import annotations

import math
import statistics
import time
from typing import Any

import torch
import torch.nn.functional as F

from .genotype import Genotype
from .supernet import SuperNet


def mnas_reward(accuracy: float, latency_ms: float | None, target_ms: float, w: float) -> float:
    """MnasNet's soft latency constraint: accuracy * (latency / target) ** w (w < 0 penalises slow children)."""
    if target_ms <= 0 or latency_ms is None:
        return float(accuracy)
    return float(accuracy) * (max(latency_ms, 1e-6) / target_ms) ** w


def measure_latency_ms(genotype: Genotype, *, size: int = 48, reps: int = 5, **model_kwargs: Any) -> float:
    """Median milliseconds of one eval-mode forward pass on one face, for the registered `nasnet` built from
    `genotype` (its default size unless `model_kwargs` says otherwise), on the current torch threads."""
    from ..models import create_model

    model = create_model("nasnet", genotype=genotype.to_dict(), **model_kwargs).eval().to(memory_format=CHANNELS_LAST)
    x = torch.zeros(1, 1, size, size).contiguous(memory_format=CHANNELS_LAST)
    times = []
    with torch.no_grad():
        model(x)
        for _ in range(reps):
            start = time.perf_counter()
            model(x)
            times.append((time.perf_counter() - start) * 1e3)
    return statistics.median(times)


CHANNELS_LAST = torch.channels_last


def _accuracy(logits: torch.Tensor, y: torch.Tensor) -> float:
    return float((logits.argmax(1) == y).float().mean())


class _Batches:
    """Endless shuffled minibatches of an index range, resumable through `state_dict()`."""

    def __init__(self, n: int, batch_size: int, generator: torch.Generator):
        self.n, self.batch_size, self.generator = n, min(batch_size, n), generator
        self.order = torch.randperm(n, generator=generator)
        self.pos = 0

    def next(self) -> torch.Tensor:
        if self.pos + self.batch_size > self.n:
            self.order, self.pos = torch.randperm(self.n, generator=self.generator), 0
        idx = self.order[self.pos:self.pos + self.batch_size]
        self.pos += self.batch_size
        return idx

    def state_dict(self) -> dict[str, Any]:
        return {"order": self.order, "pos": self.pos}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.order, self.pos = state["order"], state["pos"]


class SharedWeights:
    """The ENAS evaluator: one supernet, trained on sampled children, scoring children with its weights.

    Inputs are normalised float tensors (N, 1, S, S); `augment` maps a 0..255 batch to an augmented one
    and `normalize` maps 0..255 to model input, so training images stay in pixel units for augmentation.
    """

    def __init__(self, supernet: SuperNet, train_x: torch.Tensor, train_y: torch.Tensor, val_x: torch.Tensor,
                 val_y: torch.Tensor, *, batch_size: int, eval_batch: int, lr: float, seed: int,
                 augment=None, normalize=None, weight_decay: float = 3e-4):
        self.net = supernet.to(memory_format=CHANNELS_LAST)
        self.train_x, self.train_y, self.val_x, self.val_y = train_x, train_y, val_x, val_y
        self.augment, self.normalize = augment, normalize or (lambda x: x)
        self.generator = torch.Generator().manual_seed(seed)
        self.train_batches = _Batches(len(train_y), batch_size, self.generator)
        self.val_batches = _Batches(len(val_y), eval_batch, self.generator)
        self.eval_batch = eval_batch
        self.optimizer = torch.optim.SGD(supernet.parameters(), lr=lr, momentum=0.9, nesterov=True,
                                         weight_decay=weight_decay)

    def train_step(self, genotype: Genotype, lr: float | None = None) -> tuple[float, float]:
        """One SGD step of the shared weights on `genotype`'s child; (loss, batch accuracy)."""
        if lr is not None:
            for group in self.optimizer.param_groups:
                group["lr"] = lr
        idx = self.train_batches.next()
        x = self.train_x[idx]
        if self.augment is not None:
            x = self.augment(x, self.generator)
        x, y = self._input(x), self.train_y[idx]
        self.net.train()
        logits = self.net(x, genotype)
        loss = F.cross_entropy(logits, y)
        self.optimizer.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(self.net.parameters(), 5.0)
        self.optimizer.step()
        return loss.item(), _accuracy(logits.detach(), y)

    @torch.no_grad()
    def __call__(self, genotype: Genotype) -> float:
        """Accuracy on the next validation batch (the controller's reward)."""
        idx = self.val_batches.next()
        self.net.eval()
        return _accuracy(self.net(self._input(self.val_x[idx]), genotype), self.val_y[idx])

    @torch.no_grad()
    def full(self, genotype: Genotype) -> float:
        """Accuracy on the whole validation part (the final re-scoring)."""
        self.net.eval()
        correct = 0
        for start in range(0, len(self.val_y), self.eval_batch):
            x = self._input(self.val_x[start:start + self.eval_batch])
            correct += int((self.net(x, genotype).argmax(1) == self.val_y[start:start + self.eval_batch]).sum())
        return correct / max(1, len(self.val_y))

    def _input(self, pixels: torch.Tensor) -> torch.Tensor:
        return self.normalize(pixels).contiguous(memory_format=CHANNELS_LAST)

    def state_dict(self) -> dict[str, Any]:
        return {"supernet": self.net.state_dict(), "optimizer": self.optimizer.state_dict(),
                "generator": self.generator.get_state(), "train_batches": self.train_batches.state_dict(),
                "val_batches": self.val_batches.state_dict()}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.net.load_state_dict(state["supernet"])
        self.optimizer.load_state_dict(state["optimizer"])
        self.generator.set_state(state["generator"])
        self.train_batches.load_state_dict(state["train_batches"])
        self.val_batches.load_state_dict(state["val_batches"])


class FromScratch:
    """NASNet's evaluator: train the child from scratch for `steps` steps (Adam or SGD), score it on all of validation.

    Every child sees the same batches, augmentations and initialisation seed (common random numbers):
    a short training run is noisy (about +-0.04 accuracy between seeds on FER2013 at 150 steps,
    measured), and sharing that noise across children keeps it out of their differences. `full`
    re-trains with `rescore_seeds` other seeds and averages, for the final ranking.

    Measured on FER2013 at 24 px, F=8, N=1, batch 64: after 150 augmented SGD steps (lr 0.05) children
    still sat at the class prior (0.25 validation accuracy, all "happy"), so their rewards ranked nothing;
    150 Adam steps without augmentation reach 0.37-0.38 (lr 3e-3 / 1e-2), 300 steps 0.40.
    """

    def __init__(self, train_x: torch.Tensor, train_y: torch.Tensor, val_x: torch.Tensor, val_y: torch.Tensor, *,
                 F: int, N: int, num_classes: int, steps: int, batch_size: int, eval_batch: int, lr: float,
                 seed: int, augment=None, normalize=None, rescore_seeds: int = 2, optimizer: str = "adam"):
        self.train_x, self.train_y, self.val_x, self.val_y = train_x, train_y, val_x, val_y
        self.F, self.N, self.num_classes = F, N, num_classes
        self.steps, self.batch_size, self.eval_batch, self.lr = steps, batch_size, eval_batch, lr
        self.augment, self.normalize = augment, normalize or (lambda x: x)
        self.seed, self.rescore_seeds, self.optimizer = seed, rescore_seeds, optimizer

    def train_and_score(self, genotype: Genotype, seed: int) -> float:
        from ..models.nasnet import NASNet

        generator = torch.Generator().manual_seed(seed)
        with torch.random.fork_rng():
            torch.manual_seed(seed)
            model = NASNet(genotype, F=self.F, N=self.N, num_classes=self.num_classes, stem_stride=1)
        model = model.to(memory_format=CHANNELS_LAST)
        if self.optimizer == "adam":
            optimizer = torch.optim.Adam(model.parameters(), lr=self.lr)
        else:
            optimizer = torch.optim.SGD(model.parameters(), lr=self.lr, momentum=0.9, nesterov=True, weight_decay=3e-4)
        batches = _Batches(len(self.train_y), self.batch_size, generator)
        model.train()
        for step in range(self.steps):
            for group in optimizer.param_groups:
                group["lr"] = self.lr * 0.5 * (1.0 + math.cos(math.pi * step / self.steps))
            idx = batches.next()
            x = self.train_x[idx]
            if self.augment is not None:
                x = self.augment(x, generator)
            loss = F.cross_entropy(model(self._input(x)), self.train_y[idx])
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
        model.eval()
        correct = 0
        with torch.no_grad():
            for start in range(0, len(self.val_y), self.eval_batch):
                x = self._input(self.val_x[start:start + self.eval_batch])
                correct += int((model(x).argmax(1) == self.val_y[start:start + self.eval_batch]).sum())
        return correct / max(1, len(self.val_y))

    def __call__(self, genotype: Genotype) -> float:
        return self.train_and_score(genotype, self.seed)

    def full(self, genotype: Genotype) -> float:
        seeds = [self.seed + 1 + k for k in range(max(1, self.rescore_seeds))]
        return float(sum(self.train_and_score(genotype, s) for s in seeds) / len(seeds))

    def _input(self, pixels: torch.Tensor) -> torch.Tensor:
        return self.normalize(pixels).contiguous(memory_format=CHANNELS_LAST)

    def state_dict(self) -> dict[str, Any]:
        return {}  # stateless: every evaluation is a pure function of (genotype, seed)

    def load_state_dict(self, state: dict[str, Any]) -> None:
        pass
