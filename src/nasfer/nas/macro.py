"""`--space macro`: a MnasNet-style macro space (Tan et al. 2019) whose points include the hand designs.

A network is a stem, 3 or 4 stages and a head:

- stem: 1 or 2 3x3 conv-BN-ReLU at `width` channels, the first at `stride` 1 or 2;
- stage s: `depth` blocks of one type at `width` = stem width * 2^s * multiplier channels, then a
  downsampling step (every stage halves the resolution):
  * `plain`: 3x3 conv-BN-ReLU (VGG, Simonyan & Zisserman 2015); max-pool is 2x2;
  * `sep`: depthwise-separable k x k conv + BN (k = 3, 5, 7), ReLU between blocks, and a 1x1 residual
    projection across the stage (Xception, Chollet 2017; mini-Xception, Arriaga et al. 2017); max-pool
    is 3x3 stride 2;
  * `cell`: the design's NASNet normal cell (Table 3 ops, B blocks; one searched cell for all stages);
  * downsampling: `max_pool`, `strided_conv` (3x3 stride-2 conv-BN-ReLU) or `reduction_cell` (the
    searched NASNet reduction cell); cells are projected back to `width` channels by a 1x1 conv-BN
    when their concatenation differs;
- head: dropout then a linear layer after global average pooling (`linear`), or a 3x3 conv to the
  classes followed by global average pooling (`conv`, mini-Xception's head).

`vgg_spec(16)`, `vgg_spec(32)` and `mini_xception_spec()` are points of this space that build networks
with the same layers, in the same order, as the registered `vgg` and `mini-xception` (tests load one's
weights into the other and compare outputs). The spec is JSON (`FORMAT`); `check_spec` validates one
written by hand, which may leave the space's grid (any depth, width or number of stages).
"""

from __future__ import annotations

from typing import Any, Sequence

from ..errors import ModelError
from .genotype import _check_cell
from .nasnet_space import cell_decisions, decode_genotype, encode_genotype
from .space import Decision, SearchSpace, register_space

FORMAT = "nasfer-macro/1"
BLOCKS = ("plain", "sep", "cell")
DOWNS = ("max_pool", "strided_conv", "reduction_cell")
HEADS = ("linear", "conv")
KERNELS = (3, 5, 7)
STEM_STRIDES = (1, 2)
STEM_WIDTHS = (8, 16, 24, 32)
STEM_CONVS = (1, 2)
STAGE_COUNTS = (3, 4)
DEPTHS = (1, 2, 3)
MULTIPLIERS = (0.5, 1.0, 1.5, 2.0)
DROPOUTS = (0.0, 0.1, 0.2, 0.3, 0.5)
MAX_STAGES = max(STAGE_COUNTS)


def even(x: float) -> int:
    """Nearest even integer >= 2 (factorized reductions in cells halve channel counts)."""
    return max(2, 2 * round(x / 2))


def stage_width(stem_width: int, stage: int, multiplier: float) -> int:
    return even(stem_width * 2 ** stage * multiplier)


def _int(value: Any, name: str, where: str, lo: int, hi: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or not lo <= value <= hi:
        raise ModelError(f"{where}: {name} must be an integer in {lo}..{hi}, got {value!r}")
    return value


def check_spec(data: Any, where: str = "macro spec") -> dict[str, Any]:
    """Validate a macro spec and return its canonical form (fields a stage ignores dropped).

    Raises ModelError naming the first bad field.
    """
    if not isinstance(data, dict):
        raise ModelError(f"{where}: a macro spec is a JSON object")
    if data.get("format", FORMAT) != FORMAT:
        raise ModelError(f"{where}: unsupported format {data.get('format')!r} (expected {FORMAT!r})")
    stem = data.get("stem")
    if not isinstance(stem, dict):
        raise ModelError(f"{where}: 'stem' must be an object with stride, width and convs")
    out_stem = {"stride": _int(stem.get("stride"), "stem.stride", where, 1, 4),
                "width": _int(stem.get("width"), "stem.width", where, 1, 1024),
                "convs": _int(stem.get("convs", 1), "stem.convs", where, 1, 4)}
    stages = data.get("stages")
    if not isinstance(stages, list) or not 1 <= len(stages) <= 6:
        raise ModelError(f"{where}: 'stages' must be a list of 1..6 stage objects")
    out_stages = []
    for i, stage in enumerate(stages):
        here = f"stages[{i}]"
        if not isinstance(stage, dict):
            raise ModelError(f"{where}: {here} must be an object")
        block, down = stage.get("block"), stage.get("down")
        if block not in BLOCKS:
            raise ModelError(f"{where}: {here}.block must be one of {', '.join(BLOCKS)}, got {block!r}")
        if down not in DOWNS:
            raise ModelError(f"{where}: {here}.down must be one of {', '.join(DOWNS)}, got {down!r}")
        item = {"block": block, "depth": _int(stage.get("depth"), f"{here}.depth", where, 1, 8),
                "width": _int(stage.get("width"), f"{here}.width", where, 2, 2048), "down": down}
        if block == "sep":
            kernel = stage.get("kernel", 3)
            if kernel not in KERNELS:
                raise ModelError(f"{where}: {here}.kernel must be one of {KERNELS}, got {kernel!r}")
            item["kernel"] = kernel
        out_stages.append(item)
    head = data.get("head", {})
    if not isinstance(head, dict):
        raise ModelError(f"{where}: 'head' must be an object with dropout and kind")
    dropout = head.get("dropout", 0.0)
    if isinstance(dropout, bool) or not isinstance(dropout, (int, float)) or not 0.0 <= dropout < 1.0:
        raise ModelError(f"{where}: head.dropout must be a number in [0, 1), got {dropout!r}")
    kind = head.get("kind", "linear")
    if kind not in HEADS:
        raise ModelError(f"{where}: head.kind must be one of {', '.join(HEADS)}, got {kind!r}")
    spec: dict[str, Any] = {"format": FORMAT, "stem": out_stem, "stages": out_stages,
                            "head": {"dropout": float(dropout), "kind": kind}}
    for cell, used in (("normal_cell", any(s["block"] == "cell" for s in out_stages)),
                       ("reduction_cell", any(s["down"] == "reduction_cell" for s in out_stages))):
        if used:
            if cell not in data:
                raise ModelError(f"{where}: a stage uses a NASNet cell but '{cell}' is missing")
            spec[cell] = [list(b) for b in _check_cell(data[cell], cell, where)]
    return spec


def vgg_spec(width: int = 32, dropout: float = 0.3) -> dict[str, Any]:
    """The registered `vgg` (four blocks of two 3x3 convs, widths w..8w, 2x2 max-pools) as a macro spec."""
    return check_spec({"stem": {"stride": 1, "width": width, "convs": 1},
                       "stages": [{"block": "plain", "depth": 1 if s == 0 else 2, "width": width * 2 ** s,
                                   "down": "max_pool"} for s in range(4)],
                       "head": {"dropout": dropout, "kind": "linear"}})


def mini_xception_spec(width: int = 8) -> dict[str, Any]:
    """The registered `mini-xception` (two stem convs, four residual separable modules, conv head)."""
    return check_spec({"stem": {"stride": 1, "width": width, "convs": 2},
                       "stages": [{"block": "sep", "kernel": 3, "depth": 2, "width": width * 2 ** (s + 1),
                                   "down": "max_pool"} for s in range(4)],
                       "head": {"dropout": 0.0, "kind": "conv"}})


_MACRO_DECISIONS = ("stem.stride", "stem.width", "stem.convs", "stages")
_STAGE_DECISIONS = ("block", "kernel", "depth", "width_mult", "down")


@register_space("macro")
class MacroSpace(SearchSpace):
    """The macro space above; `blocks` is B of its NASNet cells. Raises ValueError for blocks < 1."""

    name = "macro"

    def __init__(self, blocks: int = 5):
        if blocks < 1:
            raise ValueError(f"macro space needs blocks >= 1, got {blocks}")
        self.blocks = int(blocks)
        head = [Decision("stem.stride", STEM_STRIDES), Decision("stem.width", STEM_WIDTHS),
                Decision("stem.convs", STEM_CONVS), Decision("stages", STAGE_COUNTS)]
        choices = {"block": BLOCKS, "kernel": KERNELS, "depth": DEPTHS, "width_mult": MULTIPLIERS, "down": DOWNS}
        for s in range(MAX_STAGES):
            head += [Decision(f"stage{s}.{name}", choices[name], f"stage.{name}") for name in _STAGE_DECISIONS]
        head += [Decision("head.dropout", DROPOUTS), Decision("head.kind", HEADS)]
        self.n_macro = len(head)
        self.decisions = tuple(head) + cell_decisions(self.blocks, prefix="cell.")

    def options(self) -> dict[str, Any]:
        return {"blocks": self.blocks}

    def decode(self, values: Sequence[int]) -> dict[str, Any]:
        v = self.check(values)
        named = {d.name: d.choices[i] for d, i in zip(self.decisions[: self.n_macro], v)}
        width = named["stem.width"]
        stages = []
        for s in range(named["stages"]):
            p = f"stage{s}."
            stage = {"block": named[p + "block"], "depth": named[p + "depth"],
                     "width": stage_width(width, s, named[p + "width_mult"]), "down": named[p + "down"]}
            if stage["block"] == "sep":
                stage["kernel"] = named[p + "kernel"]
            stages.append(stage)
        spec = {"stem": {"stride": named["stem.stride"], "width": width, "convs": named["stem.convs"]},
                "stages": stages, "head": {"dropout": named["head.dropout"], "kind": named["head.kind"]}}
        genotype = decode_genotype(v[self.n_macro:], self.blocks)
        spec["normal_cell"], spec["reduction_cell"] = genotype.normal, genotype.reduction
        return check_spec(spec)  # canonical: drops the cells no stage uses

    def encode(self, spec: dict[str, Any]) -> tuple[int, ...]:
        spec = check_spec(spec)
        stem, stages = spec["stem"], spec["stages"]

        def index(choices: Sequence[Any], value: Any, what: str) -> int:
            if value not in choices:
                raise ModelError(f"{what} = {value!r} is not a point of the macro space (choices {list(choices)})")
            return list(choices).index(value)

        out = [index(STEM_STRIDES, stem["stride"], "stem.stride"), index(STEM_WIDTHS, stem["width"], "stem.width"),
               index(STEM_CONVS, stem["convs"], "stem.convs"), index(STAGE_COUNTS, len(stages), "number of stages")]
        for s in range(MAX_STAGES):
            if s >= len(stages):
                out += [0] * len(_STAGE_DECISIONS)
                continue
            st = stages[s]
            mults = [m for m in MULTIPLIERS if stage_width(stem["width"], s, m) == st["width"]]
            if not mults:
                raise ModelError(f"stages[{s}].width = {st['width']} is not stem width * 2^{s} * one of {MULTIPLIERS}")
            out += [BLOCKS.index(st["block"]), KERNELS.index(st.get("kernel", 3)), index(DEPTHS, st["depth"], f"stages[{s}].depth"),
                    MULTIPLIERS.index(mults[0]), DOWNS.index(st["down"])]
        out += [index(DROPOUTS, spec["head"]["dropout"], "head.dropout"), HEADS.index(spec["head"]["kind"])]
        from .genotype import OP_NAMES, Genotype

        unused = [(0, OP_NAMES[0], 0, OP_NAMES[0])] * self.blocks  # encodes to index 0 everywhere
        cells = {}
        for kind in ("normal", "reduction"):
            blocks = spec.get(f"{kind}_cell", unused)
            if len(blocks) != self.blocks:
                raise ModelError(f"the spec's {kind} cell has {len(blocks)} blocks; this space has {self.blocks}")
            cells[kind] = blocks
        return tuple(out) + encode_genotype(Genotype(**cells))

    def model(self, spec: dict[str, Any]) -> tuple[str, dict[str, Any]]:
        return "macro", {"spec": check_spec(spec)}
