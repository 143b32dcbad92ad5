"""`--space nasnet`: the design's NASNet cell space (Zoph et al. 2018) as a declaration.

Decisions, per cell kind (normal, then reduction) and block i: input A, input B (i + 2 choices each:
h[i-2], h[i-1] or an earlier block), op A, op B (the 13 Table 3 ops), NASNet's sampling order. The
spec is the genotype JSON (`nasfer-genotype/1`); the network is the registered `nasnet` at the depth
and width it is retrained at (F filters, N cells per stack; `nasfer train --genotype` builds the same),
so the search scores the deep network, not a one-cell proxy of it.
"""

from __future__ import annotations

from typing import Any, Sequence

from ..errors import ModelError
from .genotype import CELL_TYPES, OP_NAMES, Genotype
from .space import Decision, SearchSpace, register_space

#: (decision name, slot in the block tuple) in NASNet's order.
_SLOTS = (("input_a", 0), ("input_b", 2), ("op_a", 1), ("op_b", 3))


def cell_decisions(blocks: int, prefix: str = "") -> tuple[Decision, ...]:
    """The 4 * blocks decisions of each cell kind; ops share a head per cell kind, inputs per block."""
    out = []
    for kind in CELL_TYPES:
        for i in range(blocks):
            for slot, _ in _SLOTS:
                if slot.startswith("input"):
                    out.append(Decision(f"{prefix}{kind}.{i}.{slot}", tuple(range(i + 2)), f"{prefix}{kind}.input{i}"))
                else:
                    out.append(Decision(f"{prefix}{kind}.{i}.{slot}", OP_NAMES, f"{prefix}{kind}.op"))
    return tuple(out)


def decode_genotype(values: Sequence[int], blocks: int) -> Genotype:
    """The first 8 * blocks values (as `cell_decisions` orders them) -> a Genotype."""
    it = iter(values)
    cells: dict[str, list[tuple]] = {}
    for kind in CELL_TYPES:
        cells[kind] = []
        for _ in range(blocks):
            block: list[Any] = [0, "", 0, ""]
            for slot, index in _SLOTS:
                v = next(it)
                block[index] = int(v) if slot.startswith("input") else OP_NAMES[v]
            cells[kind].append(tuple(block))
    return Genotype(**cells)


def encode_genotype(genotype: Genotype) -> tuple[int, ...]:
    out = []
    for kind in CELL_TYPES:
        for block in genotype.cell(kind):
            for slot, index in _SLOTS:
                out.append(block[index] if slot.startswith("input") else OP_NAMES.index(block[index]))
    return tuple(out)


@register_space("nasnet")
class NasnetSpace(SearchSpace):
    """NASNet cells with `blocks` blocks, evaluated as `nasnet(genotype, F, N)`.

    Raises ValueError for blocks < 1, an odd F or N < 1.
    """

    name = "nasnet"

    def __init__(self, blocks: int = 5, F: int = 16, N: int = 2):
        if blocks < 1 or N < 1 or F < 2 or F % 2:
            raise ValueError(f"nasnet space needs blocks >= 1, N >= 1 and an even F >= 2 (got {blocks}, {N}, {F})")
        self.blocks, self.F, self.N = int(blocks), int(F), int(N)
        self.decisions = cell_decisions(self.blocks)

    def options(self) -> dict[str, Any]:
        return {"blocks": self.blocks, "F": self.F, "N": self.N}

    def decode(self, values: Sequence[int]) -> dict[str, Any]:
        return decode_genotype(self.check(values), self.blocks).to_dict()

    def encode(self, spec: dict[str, Any]) -> tuple[int, ...]:
        genotype = Genotype.from_dict(spec)
        if len(genotype.normal) != self.blocks or len(genotype.reduction) != self.blocks:
            raise ModelError(f"genotype has {len(genotype.normal)}/{len(genotype.reduction)} blocks; "
                             f"this space has {self.blocks}")
        return encode_genotype(genotype)

    def model(self, spec: dict[str, Any]) -> tuple[str, dict[str, Any]]:
        return "nasnet", {"genotype": Genotype.from_dict(spec).to_dict(), "F": self.F, "N": self.N}
