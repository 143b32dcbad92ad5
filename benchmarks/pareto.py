"""Accuracy against latency: which rows of a model table are on the Pareto front, and its plot.

A row is a dict with `name`, `accuracy` (fraction, 0-1), `ms_per_face_batch_1_one_thread` (CPU ms) and
optionally `package` (rows of a package other than nasfer are drawn as squares);
rows missing either figure are left out of both. Pareto dominance as usual in multi-objective
optimisation: a row is dominated when another is at least as fast and at least as accurate and strictly
better in one of the two; the front is the rows nothing dominates (two rows with identical figures are
both on it).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Sequence

MS = "ms_per_face_batch_1_one_thread"


def _placed(row: dict[str, Any]) -> bool:
    return row.get("accuracy") is not None and row.get(MS) is not None


def pareto_front(rows: Sequence[dict[str, Any]]) -> list[int]:
    """Indices of the rows on the accuracy / ms-per-face Pareto front, fastest first (ties: table order)."""
    placed = [i for i, r in enumerate(rows) if _placed(r)]

    def dominates(a: dict[str, Any], b: dict[str, Any]) -> bool:
        return (a[MS] <= b[MS] and a["accuracy"] >= b["accuracy"]
                and (a[MS] < b[MS] or a["accuracy"] > b["accuracy"]))

    front = [i for i in placed if not any(dominates(rows[j], rows[i]) for j in placed if j != i)]
    return sorted(front, key=lambda i: (rows[i][MS], i))


def plot_pareto(rows: Sequence[dict[str, Any]], path: str | Path, title: str = "") -> Path:
    """PNG of accuracy (%) against ms per face (batch 1, one thread; log x axis), one labelled point per row:
    the front as filled points joined by a step line (the best accuracy reachable within a latency budget),
    dominated rows as open grey points. Rows without both figures are not drawn. Returns the path written.

    Needs matplotlib (nasfer's `plots` extra); uses no pyplot state.
    """
    from matplotlib.figure import Figure
    from matplotlib.ticker import FuncFormatter, LogLocator, NullFormatter

    front = pareto_front(rows)
    placed = [i for i, r in enumerate(rows) if _placed(r)]
    if not placed:
        raise ValueError("no row has both an accuracy and a ms per face to plot")
    fig = Figure(figsize=(7.5, 5.0), dpi=100)
    ax = fig.subplots()
    xs = [rows[i][MS] for i in front]
    ys = [100 * rows[i]["accuracy"] for i in front]
    ax.step(xs, ys, where="post", color="tab:blue", linewidth=1.5, zorder=1, label="Pareto front")
    for i in placed:
        row, on = rows[i], i in front
        peer = row.get("package") not in (None, "nasfer")  # another package's model: squares
        ax.scatter(row[MS], 100 * row["accuracy"], s=55, zorder=2, marker="s" if peer else "o",
                   facecolors=("tab:orange" if peer else "tab:blue") if on else "none",
                   edgecolors=("tab:orange" if peer else "tab:blue") if on else "grey")
        ax.annotate(str(row.get("name") or Path(str(row.get("model", "?"))).stem), (row[MS], 100 * row["accuracy"]),
                    xytext=(6, 5), textcoords="offset points", fontsize=8, color="black" if on else "dimgrey")
    ax.scatter([], [], s=55, marker="o", facecolors="tab:blue", edgecolors="tab:blue", label="nasfer, on the front")
    ax.scatter([], [], s=55, marker="o", facecolors="none", edgecolors="grey", label="dominated")
    if any(rows[i].get("package") not in (None, "nasfer") for i in placed):
        ax.scatter([], [], s=55, marker="s", facecolors="tab:orange", edgecolors="tab:orange",
                   label="another package (open if dominated)")
    ax.set_xscale("log")
    ax.xaxis.set_major_locator(LogLocator(base=10, subs=(1.0, 2.0, 5.0)))
    ax.xaxis.set_major_formatter(FuncFormatter(lambda v, _: f"{v:g}"))  # 0.5, 1, 2 rather than 10^0
    ax.xaxis.set_minor_formatter(NullFormatter())
    lo, hi = min(rows[i][MS] for i in placed), max(rows[i][MS] for i in placed)
    ax.set_xlim(lo / 1.4, hi * 2.2)  # room for the labels right of the points
    acc = [100 * rows[i]["accuracy"] for i in placed]
    ax.set_ylim(min(acc) - 2, max(acc) + 2)
    ax.set_xlabel("CPU ms per face (batch 1, one thread; log scale)")
    ax.set_ylabel("accuracy (%)")
    ax.set_title(title or "Accuracy against latency")
    ax.grid(True, which="both", alpha=0.3)
    ax.legend(loc="best", fontsize=8)
    fig.tight_layout()
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path)
    return path


def write_plot(rows: Sequence[dict[str, Any]], path: str | Path, title: str = "") -> Path:
    """`plot_pareto` for a command line: a missing matplotlib or a path that cannot be written ends the command
    with a one-line SystemExit naming the cause instead of a traceback. Returns the path written."""
    try:
        return plot_pareto(rows, path, title)
    except ImportError as exc:
        raise SystemExit(f"--plot needs matplotlib (pip install 'nasfer[plots]'): {exc}") from None
    except OSError as exc:
        raise SystemExit(f"--plot {path}: cannot write it ({exc.strerror or exc})") from None
