"""A cell architecture as a frozen value: `Genotype(normal, reduction)`, its JSON form and validation.

Each cell is B blocks; block i is `(input_a, op_a, input_b, op_b)` and computes
`op_a(h[input_a]) + op_b(h[input_b])`. Inputs index the cell's hidden states: 0 = h[i-2] (the output
of the cell before the previous one), 1 = h[i-1] (the previous cell's output), 2 + j = block j, so
block i may use 0 .. i + 1. The cell's output is the concatenation of the blocks no other block uses.

Kept free of torch so a genotype can be read, checked and drawn where torch is not installed; the op
names are repeated here and a test checks they equal `nasfer.nas.ops.OPS`.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterable, Sequence

from ..errors import ModelError

FORMAT = "nasfer-genotype/1"

#: The candidate operations, in the controller's action order (equal to `tuple(nasfer.nas.ops.OPS)`).
OP_NAMES: tuple[str, ...] = (
    "identity", "conv_1x3_3x1", "conv_1x7_7x1", "dil_conv_3x3", "avg_pool_3x3", "max_pool_3x3",
    "max_pool_5x5", "max_pool_7x7", "conv_1x1", "conv_3x3", "sep_conv_3x3", "sep_conv_5x5", "sep_conv_7x7",
)

Block = tuple[int, str, int, str]
CELL_TYPES = ("normal", "reduction")


def _check_cell(blocks: Any, cell: str, where: str) -> tuple[Block, ...]:
    """The cell as a tuple of blocks, or a ModelError saying which block is wrong and why."""
    if not isinstance(blocks, (list, tuple)) or not blocks:
        raise ModelError(f"{where}: '{cell}' must be a non-empty list of blocks [input_a, op_a, input_b, op_b]")
    out: list[Block] = []
    for i, block in enumerate(blocks):
        here = f"{where}: {cell} block {i}"
        if not isinstance(block, (list, tuple)) or len(block) != 4:
            raise ModelError(f"{here}: expected [input_a, op_a, input_b, op_b], got {block!r}")
        in_a, op_a, in_b, op_b = block
        for name, value in (("input_a", in_a), ("input_b", in_b)):
            if isinstance(value, bool) or not isinstance(value, int):
                raise ModelError(f"{here}: {name} must be an integer state index, got {value!r}")
            if not 0 <= value <= i + 1:
                raise ModelError(f"{here}: {name} = {value} is out of range; block {i} may use 0..{i + 1} "
                                 f"(0 = h[i-2], 1 = h[i-1], 2.. = earlier blocks)")
        for name, value in (("op_a", op_a), ("op_b", op_b)):
            if value not in OP_NAMES:
                raise ModelError(f"{here}: unknown {name} {value!r}; choose one of {', '.join(OP_NAMES)}")
        out.append((int(in_a), str(op_a), int(in_b), str(op_b)))
    return tuple(out)


def concat_states(blocks: Sequence[Block]) -> list[int]:
    """State indices the cell concatenates: blocks that no later block takes as input."""
    used = {b[0] for b in blocks} | {b[2] for b in blocks}
    return [2 + j for j in range(len(blocks)) if 2 + j not in used]


@dataclass(frozen=True)
class Genotype:
    """Normal and reduction cells; hashable, so searches can cache and de-duplicate by value."""

    normal: tuple[Block, ...]
    reduction: tuple[Block, ...]

    def __post_init__(self) -> None:
        for cell in CELL_TYPES:
            object.__setattr__(self, cell, _check_cell(getattr(self, cell), cell, "genotype"))

    def cell(self, kind: str) -> tuple[Block, ...]:
        if kind not in CELL_TYPES:
            raise ValueError(f"cell kind must be one of {CELL_TYPES}, got {kind!r}")
        return getattr(self, kind)

    def concat(self, kind: str) -> list[int]:
        return concat_states(self.cell(kind))

    def ops(self) -> list[str]:
        """Every op of both cells, in block order (a, b): handy for rewards and statistics."""
        return [op for kind in CELL_TYPES for b in self.cell(kind) for op in (b[1], b[3])]

    # -- JSON
    def to_dict(self) -> dict[str, Any]:
        return {"format": FORMAT, **{kind: [list(b) for b in self.cell(kind)] for kind in CELL_TYPES}}

    @classmethod
    def from_dict(cls, data: Any, where: str = "genotype") -> "Genotype":
        """Parse `to_dict()`'s form (extra keys, e.g. search metadata, are ignored)."""
        if isinstance(data, Genotype):
            return data
        if not isinstance(data, dict):
            raise ModelError(f"{where}: a genotype is a JSON object with 'normal' and 'reduction' cells")
        fmt = data.get("format", FORMAT)
        if fmt != FORMAT:
            raise ModelError(f"{where}: unsupported genotype format {fmt!r} (expected {FORMAT!r})")
        missing = [kind for kind in CELL_TYPES if kind not in data]
        if missing:
            raise ModelError(f"{where}: missing {' and '.join(repr(m) for m in missing)} cell")
        return cls(**{kind: _check_cell(data[kind], kind, where) for kind in CELL_TYPES})

    @classmethod
    def load(cls, path: str | os.PathLike) -> "Genotype":
        path = Path(path)
        if not path.is_file():
            raise ModelError(f"{path}: genotype file not found")
        try:
            data = json.loads(path.read_text())
        except (json.JSONDecodeError, UnicodeDecodeError) as exc:
            raise ModelError(f"{path}: not a JSON genotype ({exc})") from None
        return cls.from_dict(data, where=str(path))

    def save(self, path: str | os.PathLike, **meta: Any) -> Path:
        """Write the JSON form; `meta` (scores, search settings) is stored beside it and ignored on load."""
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps({**self.to_dict(), **meta}, indent=1) + "\n")
        return path

    def __str__(self) -> str:
        def fmt(blocks: Iterable[Block]) -> str:
            return " | ".join(f"{a}:{oa}+{b}:{ob}" for a, oa, b, ob in blocks)

        return f"normal[{fmt(self.normal)}] reduction[{fmt(self.reduction)}]"


#: NASNet-A (Zoph et al. 2018, fig. 4; the TF-slim `nasnet_utils` cells) in this op set. Concatenation
#: follows this package's rule (unused blocks), as DARTS's transcription does: the TF code also
#: concatenates h[i-2] in the normal cell and block 1 in the reduction cell.
NASNET_A = Genotype(
    normal=(
        (1, "sep_conv_5x5", 0, "sep_conv_3x3"),
        (0, "sep_conv_5x5", 0, "sep_conv_3x3"),
        (1, "avg_pool_3x3", 0, "identity"),
        (0, "avg_pool_3x3", 0, "avg_pool_3x3"),
        (1, "sep_conv_3x3", 1, "identity"),
    ),
    reduction=(
        (1, "sep_conv_5x5", 0, "sep_conv_7x7"),
        (1, "max_pool_3x3", 0, "sep_conv_7x7"),
        (1, "avg_pool_3x3", 0, "sep_conv_5x5"),
        (3, "identity", 2, "avg_pool_3x3"),
        (2, "sep_conv_3x3", 1, "max_pool_3x3"),
    ),
)
