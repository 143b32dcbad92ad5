"""Genotype cell -> nn.Module: preprocess the two inputs to C channels, run the blocks, concatenate.

One cell class serves both kinds; a reduction cell differs only in striding the ops that read the
cell inputs (h[i-2], h[i-1]). When h[i-2] is twice the size of h[i-1] (the cell right after a
reduction), it is brought down with a factorized reduction instead of a 1x1 conv.
"""

from __future__ import annotations

from typing import Sequence

import torch
from torch import nn

from .genotype import Block, concat_states
from .ops import OPS, FactorizedReduce, ReLUConvBN, drop_path


def preprocess(c_in: int, C: int, reduce: bool, affine: bool = True) -> nn.Module:
    """Bring a cell input to C channels (and half its size when `reduce`)."""
    return FactorizedReduce(c_in, C, affine) if reduce else ReLUConvBN(c_in, C, 1, 1, affine)


class Cell(nn.Module):
    """A fixed cell: `forward(h[i-2], h[i-1], drop_prob) -> concat of unused block outputs`.

    Output channels: `multiplier * C`, with `multiplier = len(concat)`.
    """

    def __init__(self, blocks: Sequence[Block], c_prev_prev: int, c_prev: int, C: int, *, reduction: bool,
                 reduction_prev: bool, affine: bool = True):
        super().__init__()
        self.reduction = reduction
        self.preprocess0 = preprocess(c_prev_prev, C, reduction_prev, affine)
        self.preprocess1 = preprocess(c_prev, C, False, affine)
        self.inputs: list[tuple[int, int]] = [(int(b[0]), int(b[2])) for b in blocks]
        self.ops = nn.ModuleList()
        for in_a, op_a, in_b, op_b in blocks:
            for index, name in ((in_a, op_a), (in_b, op_b)):
                stride = 2 if reduction and index < 2 else 1
                self.ops.append(OPS[name](C, stride, affine))
        self.concat = concat_states(blocks)
        self.multiplier = len(self.concat)

    def forward(self, s0: torch.Tensor, s1: torch.Tensor, drop_prob: float = 0.0) -> torch.Tensor:
        states = [self.preprocess0(s0), self.preprocess1(s1)]
        for i, (a, b) in enumerate(self.inputs):
            op_a, op_b = self.ops[2 * i], self.ops[2 * i + 1]
            h_a, h_b = op_a(states[a]), op_b(states[b])
            if self.training and drop_prob > 0:
                # Identity edges are never dropped (DARTS): they carry the gradient when the rest is dropped.
                h_a = h_a if isinstance(op_a, nn.Identity) else drop_path(h_a, drop_prob)
                h_b = h_b if isinstance(op_b, nn.Identity) else drop_path(h_b, drop_prob)
            states.append(h_a + h_b)
        return torch.cat([states[i] for i in self.concat], dim=1)
