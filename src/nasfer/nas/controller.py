"""The NASNet/ENAS controller: an LSTM that writes a genotype one decision at a time.

For each block of the normal cell, then of the reduction cell, it picks input A, input B, op A, op B
(NASNet's order; the combination is always addition). Each decision's embedding is the next step's
input, so later choices are conditioned on earlier ones. Logits are divided by a temperature and
squashed with `c * tanh` (ENAS), which keeps the policy from collapsing early. No I/O, no optimizer:
the strategy owns those.
"""

from __future__ import annotations

from typing import Sequence

import torch
from torch import nn

from .genotype import CELL_TYPES, OP_NAMES, Block, Genotype

#: Decision kinds per block, in sampling order, and where each lands in the block tuple.
_DECISIONS = (("input", 0), ("input", 2), ("op", 1), ("op", 3))


class Controller(nn.Module):
    def __init__(self, blocks: int = 5, ops: Sequence[str] = OP_NAMES, hidden: int = 100,
                 temperature: float = 5.0, tanh_constant: float = 2.5):
        super().__init__()
        if blocks < 1:
            raise ValueError(f"a cell needs at least one block, got {blocks}")
        self.blocks = blocks
        self.op_names = tuple(ops)
        self.temperature = float(temperature)
        self.tanh_constant = float(tanh_constant)
        self.lstm = nn.LSTMCell(hidden, hidden)
        self.start = nn.Parameter(torch.zeros(1, hidden))
        self.op_embed = nn.Embedding(len(self.op_names), hidden)
        self.input_embed = nn.Embedding(blocks + 1, hidden)
        self.op_head = nn.ModuleDict({kind: nn.Linear(hidden, len(self.op_names)) for kind in CELL_TYPES})
        self.input_head = nn.ModuleDict({kind: nn.Linear(hidden, blocks + 1) for kind in CELL_TYPES})
        for p in self.parameters():  # ENAS: small uniform init, so the first policy is near uniform
            nn.init.uniform_(p, -0.1, 0.1)

    def _logits(self, raw: torch.Tensor) -> torch.Tensor:
        logits = raw / self.temperature
        return self.tanh_constant * torch.tanh(logits) if self.tanh_constant > 0 else logits

    def _run(self, forced: Genotype | None, generator: torch.Generator | None,
             greedy: bool) -> tuple[Genotype, torch.Tensor, torch.Tensor]:
        hidden = self.start.shape[1]
        h = c = torch.zeros(1, hidden, device=self.start.device)
        x = self.start
        log_prob = torch.zeros((), device=x.device)
        entropy = torch.zeros((), device=x.device)
        cells: dict[str, list[Block]] = {}
        for kind in CELL_TYPES:
            blocks: list[Block] = []
            for i in range(self.blocks):
                block: list = [0, "", 0, ""]
                for decision, slot in _DECISIONS:
                    h, c = self.lstm(x, (h, c))
                    if decision == "input":
                        logits = self._logits(self.input_head[kind](h)[0, : i + 2])
                    else:
                        logits = self._logits(self.op_head[kind](h)[0])
                    log_p = torch.log_softmax(logits, dim=-1)
                    if forced is not None:
                        value = forced.cell(kind)[i][slot]
                        action = value if decision == "input" else self.op_names.index(value)
                    elif greedy:
                        action = int(log_p.argmax())
                    else:
                        action = int(torch.multinomial(log_p.exp(), 1, generator=generator))
                    log_prob = log_prob + log_p[action]
                    entropy = entropy - (log_p.exp() * log_p).sum()
                    index = torch.tensor([action], device=x.device)
                    if decision == "input":
                        block[slot] = action
                        x = self.input_embed(index)
                    else:
                        block[slot] = self.op_names[action]
                        x = self.op_embed(index)
                blocks.append(tuple(block))  # type: ignore[arg-type]
            cells[kind] = blocks
        return Genotype(**cells), log_prob, entropy

    def sample(self, generator: torch.Generator | None = None,
               greedy: bool = False) -> tuple[Genotype, torch.Tensor, torch.Tensor]:
        """(genotype, sum of log-probs of its decisions, sum of the decisions' entropies); differentiable."""
        return self._run(None, generator, greedy)

    def log_prob(self, genotype: Genotype) -> tuple[torch.Tensor, torch.Tensor]:
        """(log-prob, entropy) of the policy producing `genotype` (teacher-forced; differentiable)."""
        if len(genotype.normal) != self.blocks or len(genotype.reduction) != self.blocks:
            raise ValueError(f"genotype has {len(genotype.normal)}/{len(genotype.reduction)} blocks; "
                             f"this controller writes {self.blocks}")
        bad = [op for op in genotype.ops() if op not in self.op_names]
        if bad:
            raise ValueError(f"genotype uses op {bad[0]!r}, not in this controller's op set")
        _, log_prob, entropy = self._run(genotype, None, False)
        return log_prob, entropy


def random_genotype(blocks: int = 5, ops: Sequence[str] = OP_NAMES,
                    generator: torch.Generator | None = None) -> Genotype:
    """A genotype with every decision uniform: the honest control for a search strategy."""

    def pick(n: int) -> int:
        return int(torch.randint(n, (1,), generator=generator))

    cells = {
        kind: [(pick(i + 2), ops[pick(len(ops))], pick(i + 2), ops[pick(len(ops))]) for i in range(blocks)]
        for kind in CELL_TYPES
    }
    return Genotype(**cells)
