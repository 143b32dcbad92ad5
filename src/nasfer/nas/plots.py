"""Cell diagrams as PNG with plain matplotlib (no graphviz): boxes for states, labelled arrows for ops.

Columns follow depth: the two cell inputs on the left, each block one column right of its deepest
input, the concatenated output on the right, so data flows left to right as in the NASNet figures.
"""

from __future__ import annotations

from pathlib import Path
from typing import Sequence

from .genotype import CELL_TYPES, Block, Genotype, concat_states


def _layout(blocks: Sequence[Block]) -> dict[int, tuple[float, float]]:
    """State index -> (x, y); inputs in column 0, blocks by depth, output (-1) last."""
    depth = {0: 0, 1: 0}
    for i, (a, _, b, _) in enumerate(blocks):
        depth[2 + i] = 1 + max(depth[a], depth[b])
    columns: dict[int, list[int]] = {}
    for state, d in depth.items():
        columns.setdefault(d, []).append(state)
    pos: dict[int, tuple[float, float]] = {}
    for d, states in columns.items():
        for k, state in enumerate(states):
            pos[state] = (2.2 * d, (len(states) - 1) / 2 - k)
    pos[-1] = (2.2 * (max(columns) + 1), 0.0)
    return pos


def plot_cell(blocks: Sequence[Block], path: str | Path, title: str = "") -> Path:
    """Draw one cell to `path` (PNG)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    pos = _layout(blocks)
    width = max(x for x, _ in pos.values()) + 2
    height = 2 * max(abs(y) for _, y in pos.values()) + 2
    fig, ax = plt.subplots(figsize=(1.1 * width, 1.1 * height + 0.5))
    names = {0: "h[i-2]", 1: "h[i-1]", -1: "concat"} | {2 + i: f"block {i}\n(+)" for i in range(len(blocks))}
    colours = {0: "#cfe2f3", 1: "#cfe2f3", -1: "#d9ead3"}
    box = dict(boxstyle="round,pad=0.4", ec="#333333", lw=1.0)
    artists = {state: ax.text(x, y, names[state], ha="center", va="center", fontsize=9, zorder=3,
                              bbox={**box, "fc": colours.get(state, "#fff2cc")})
               for state, (x, y) in pos.items()}

    def arrow(src: int, dst: int, label: str, rad: float) -> None:
        (x0, y0), (x1, y1) = pos[src], pos[dst]
        span = max(1.0, abs(x1 - x0) / 2.2)
        rad = rad * (1.0 + 0.6 * (span - 1.0))  # edges that skip a column bow out around it
        ax.annotate("", xy=(x1, y1), xytext=(x0, y0), zorder=1,
                    arrowprops=dict(arrowstyle="-|>", color="#555555", lw=1.0, shrinkA=1, shrinkB=1,
                                    patchA=artists[src].get_bbox_patch(), patchB=artists[dst].get_bbox_patch(),
                                    connectionstyle=f"arc3,rad={rad}"))
        if label:
            # A point of arc3's quadratic Bezier, nearer the destination, so labels of edges
            # leaving one state do not pile up at its side (equal aspect keeps data = display geometry).
            cx, cy = (x0 + x1) / 2 + rad * (y1 - y0), (y0 + y1) / 2 - rad * (x1 - x0)
            t = 0.62
            lx = (1 - t) ** 2 * x0 + 2 * (1 - t) * t * cx + t ** 2 * x1
            ly = (1 - t) ** 2 * y0 + 2 * (1 - t) * t * cy + t ** 2 * y1
            ax.text(lx, ly, label, ha="center", va="center", fontsize=7, zorder=2,
                    bbox=dict(boxstyle="round,pad=0.15", fc="white", ec="none", alpha=0.85))

    for i, (a, op_a, b, op_b) in enumerate(blocks):
        bow = 0.35 if a == b else 0.15  # two edges between the same boxes: bend them well apart
        arrow(a, 2 + i, op_a, bow)
        arrow(b, 2 + i, op_b, -bow)
    for state in concat_states(blocks):
        arrow(state, -1, "", 0.0)
    xs = [x for x, _ in pos.values()]
    ys = [y for _, y in pos.values()]
    ax.set_xlim(min(xs) - 1, max(xs) + 1)
    ax.set_ylim(min(ys) - 1, max(ys) + 1)
    ax.set_aspect("equal")
    ax.axis("off")
    if title:
        ax.set_title(title)
    fig.tight_layout()
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def plot_genotype(genotype: Genotype, out_dir: str | Path, prefix: str = "") -> list[Path]:
    """`<prefix>normal.png` and `<prefix>reduction.png` in `out_dir`."""
    return [plot_cell(genotype.cell(kind), Path(out_dir) / f"{prefix}{kind}.png", f"{kind} cell")
            for kind in CELL_TYPES]
