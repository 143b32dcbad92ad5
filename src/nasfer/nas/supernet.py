"""ENAS-style shared weights: one network that holds every op at every edge; `forward(x, genotype)`.

Each (cell, block, slot) keeps a module for every op, used by whichever child picks that op there,
whatever input the child feeds it (ENAS shares across inputs too). In reduction cells an edge may read
a cell input (stride 2) or an earlier block (stride 1), so those edges keep both. A child runs exactly
the computation its standalone `Cell` would, with one difference that does not change the math: the
cell output always has B * C channels, with zeros where a block is used inside the cell, so the next
cell's 1x1 preprocessing keeps one weight slice per block whatever the child concatenates.
BatchNorm keeps no running statistics (every child normalises with its own batch), as in DARTS/ENAS.
"""

from __future__ import annotations

import torch
from torch import nn

from .cells import preprocess
from .genotype import OP_NAMES, Block, Genotype, concat_states
from .ops import OPS


def _batch_statistics_only(module: nn.Module) -> None:
    for m in module.modules():
        if isinstance(m, nn.modules.batchnorm._BatchNorm):
            m.track_running_stats = False
            m.running_mean = m.running_var = m.num_batches_tracked = None


class SharedCell(nn.Module):
    def __init__(self, blocks: int, c_prev_prev: int, c_prev: int, C: int, *, reduction: bool,
                 reduction_prev: bool, ops: tuple[str, ...] = OP_NAMES):
        super().__init__()
        self.blocks = blocks
        self.reduction = reduction
        self.preprocess0 = preprocess(c_prev_prev, C, reduction_prev, affine=False)
        self.preprocess1 = preprocess(c_prev, C, False, affine=False)
        self.edges = nn.ModuleList()
        for i in range(blocks):
            for _slot in range(2):
                strides = ([2] if reduction else [1]) + ([1] if reduction and i > 0 else [])
                self.edges.append(nn.ModuleDict({
                    f"s{stride}": nn.ModuleDict({name: OPS[name](C, stride, False) for name in ops})
                    for stride in strides
                }))
        self.out_channels = blocks * C

    def forward(self, s0: torch.Tensor, s1: torch.Tensor, cell: tuple[Block, ...]) -> torch.Tensor:
        states = [self.preprocess0(s0), self.preprocess1(s1)]
        for i, (in_a, op_a, in_b, op_b) in enumerate(cell):
            total = 0
            for slot, (index, op) in enumerate(((in_a, op_a), (in_b, op_b))):
                stride = 2 if self.reduction and index < 2 else 1
                total = total + self.edges[2 * i + slot][f"s{stride}"][op](states[index])
            states.append(total)
        keep = set(concat_states(cell))
        return torch.cat([states[k] if k in keep else torch.zeros_like(states[k])
                          for k in range(2, 2 + self.blocks)], dim=1)


class SuperNet(nn.Module):
    """The NASNet layout (3 stacks of N cells, 2 reductions) with shared edges; any B-block genotype runs."""

    def __init__(self, F: int = 8, N: int = 1, blocks: int = 5, num_classes: int = 7, in_channels: int = 1,
                 ops: tuple[str, ...] = OP_NAMES):
        super().__init__()
        if F < 2 or F % 2:
            raise ValueError(f"F must be even and >= 2, got {F}")
        self.blocks = blocks
        c_stem = 3 * F
        self.stem = nn.Sequential(nn.Conv2d(in_channels, c_stem, 3, padding=1, bias=False), nn.BatchNorm2d(c_stem))
        self.cells = nn.ModuleList()
        c_pp, c_p, reduction_prev = c_stem, c_stem, False
        for stack in range(3):
            C = F * 2 ** stack
            for reduction in ([True] if stack else []) + [False] * N:
                cell = SharedCell(blocks, c_pp, c_p, C, reduction=reduction, reduction_prev=reduction_prev, ops=ops)
                self.cells.append(cell)
                c_pp, c_p, reduction_prev = c_p, cell.out_channels, reduction
        # A cell's output is an unnormalised sum whose scale differs by orders of magnitude between children
        # (a chain of identities doubles it per block); the shared classifier needs it normalised, or the
        # shared-weight loss diverges (measured: 1.8 -> 8 within 60 steps on FER2013 without this BN).
        self.head = nn.Sequential(nn.BatchNorm2d(c_p, affine=False), nn.ReLU(), nn.AdaptiveAvgPool2d(1),
                                  nn.Flatten(), nn.Linear(c_p, num_classes))
        _batch_statistics_only(self)

    def forward(self, x: torch.Tensor, genotype: Genotype) -> torch.Tensor:
        if len(genotype.normal) != self.blocks or len(genotype.reduction) != self.blocks:
            raise ValueError(f"this supernet has {self.blocks} blocks per cell; the genotype has "
                             f"{len(genotype.normal)}/{len(genotype.reduction)}")
        s0 = s1 = self.stem(x)
        for cell in self.cells:
            s0, s1 = s1, cell(s0, s1, genotype.reduction if cell.reduction else genotype.normal)
        return self.head(s1)
