"""What `nasfer evaluate` writes from a report (`nasfer.evaluate.evaluate`): its plots, its JSON, its summary table.

Pure formatting of the report dict (DESIGN.md's `nasfer evaluate` contract); nothing here scores a model.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np

from .errors import NasferError


def write_plots(y_true: np.ndarray, probs: np.ndarray, report: dict[str, Any], folder: str | Path) -> dict[str, Path]:
    """confusion.png, roc.png and reliability.png of one evaluation."""
    from . import plots

    require_matplotlib()
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    title = f"{report['model']['name']} on {report['split']}"
    return {
        "confusion": plots.plot_confusion(report["confusion"], report["labels"], folder / "confusion.png", title=title),
        "roc": plots.plot_roc(y_true, probs, report["labels"], folder / "roc.png", title=f"ROC, {title}"),
        "reliability": plots.plot_reliability(y_true, probs, folder / "reliability.png", title=title),
    }


def require_matplotlib() -> None:
    """NasferError when matplotlib (the train extra) is missing, before any work that would plot."""
    import importlib.util

    if importlib.util.find_spec("matplotlib") is None:  # a training extra, absent from run-time installs
        raise NasferError("--plots needs matplotlib (pip install 'nasfer[train]')")


def to_json(report: dict[str, Any]) -> str:
    """Strict JSON (no NaN/Infinity), so every tool can read it."""
    return json.dumps(report, indent=2, allow_nan=False)


def format_summary(report: dict[str, Any]) -> str:
    """A readable table: per-class precision/recall/F1/support, then accuracy and averages."""
    width = max([len(label) for label in report["labels"]] + [12])
    lines = [f"{report['model']['name']} ({report['model']['path']}) on {report['dataset']['path']} "
             f"[{report['split']}]: {report['n']} images" + (", flip TTA" if report.get("tta") else "")
             + (", ten-crop TTA" if report.get("ten_crop") else ""), ""]
    lines.append(f"{'':<{width}}  {'precision':>9}  {'recall':>9}  {'f1':>9}  {'support':>8}  {'auc':>6}")
    for label in report["labels"]:
        pc = report["per_class"][label]
        area = report["roc_auc"].get(label)
        lines.append(f"{label:<{width}}  {pc['precision']:>9.3f}  {pc['recall']:>9.3f}  {pc['f1']:>9.3f}  "
                     f"{pc['support']:>8d}  {'n/a' if area is None else f'{area:.3f}':>6}")
    lines.append("")
    lines.append(f"{'macro avg':<{width}}  {report['macro_precision']:>9.3f}  {report['macro_recall']:>9.3f}  "
                 f"{report['macro_f1']:>9.3f}  {report['n']:>8d}")
    lines.append(f"{'weighted f1':<{width}}  {'':>9}  {'':>9}  {report['weighted_f1']:>9.3f}")
    lines.append("")
    lines.append(f"accuracy {report['accuracy']:.4f}   macro-F1 {report['macro_f1']:.4f}   "
                 f"top-2 {report['top2_accuracy']:.4f}   ECE {report['ece']:.4f}")
    lines.append(f"{report['images_per_second']:.0f} images/s ({report['seconds']:.2f} s inference)")
    if report["skipped"]:
        lines.append(f"skipped {report['skipped']} unreadable files/rows, e.g. {report['skipped_examples'][0]}")
    if report.get("contempt"):
        lines.append(f"contempt: {report['contempt']}")
    lines.extend(f"note: {note}" for note in report["notes"])
    if report.get("plots"):
        lines.append("plots: " + ", ".join(report["plots"].values()))
    return "\n".join(lines)


__all__ = ["format_summary", "require_matplotlib", "to_json", "write_plots"]
