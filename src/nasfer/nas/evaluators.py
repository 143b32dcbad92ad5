"""The shared-weight (ENAS, Pham et al. 2018) evaluator of NASNet cells, kept as a library piece.

`SharedWeights` trains the supernet on sampled children (`train_step`) and scores a child with the
shared weights on the next validation batch (`__call__`) or the whole validation part (`full`).
`nasfer search` does not use it: on FER2013 with a CPU budget the supernet stayed at the class-prior
loss (see the README), so the search trains every child from scratch (`nasfer.nas.fidelity`).

Batches are drawn from explicit generators and counters kept in `state_dict()`, so a resumed run sees
the same batches an uninterrupted one would. Memory format follows `nasfer.train.memory_format_for`
for fp32 (no autocast here): channels_last.
"""

from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F

from .genotype import Genotype
from .supernet import SuperNet


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
    and `normalize` maps 0..255 to model input (default: `nasfer.preprocessing.normalize_tensor`, the one
    definition), so training images stay in pixel units for augmentation.
    """

    def __init__(self, supernet: SuperNet, train_x: torch.Tensor, train_y: torch.Tensor, val_x: torch.Tensor,
                 val_y: torch.Tensor, *, batch_size: int, eval_batch: int, lr: float, seed: int,
                 augment=None, normalize=None, weight_decay: float = 3e-4):
        from ..train import memory_format_for

        self.memory_format = memory_format_for(supernet, "fp32")  # no autocast here
        self.net = supernet.to(memory_format=self.memory_format)
        self.train_x, self.train_y, self.val_x, self.val_y = train_x, train_y, val_x, val_y
        from ..preprocessing import Preprocessing, normalize_tensor

        spec = Preprocessing()
        self.augment, self.normalize = augment, normalize or (lambda x: normalize_tensor(x, spec))
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
        return self.normalize(pixels).contiguous(memory_format=self.memory_format)

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
