"""Figures the design reports, as PNG files.

matplotlib is a training extra, so it is imported inside each function (with the Agg backend:
these run on servers without a display). Every function takes plain arrays/lists, writes one PNG
and returns its path; none keeps state between calls.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Sequence

import numpy as np


def _pyplot():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def _save(fig, path: str | Path) -> Path:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    import matplotlib.pyplot as plt

    plt.close(fig)
    return path


def plot_confusion(confusion: Any, labels: Sequence[str], path: str | Path, title: str = "") -> Path:
    """Counts and row-normalised (recall per true class) confusion matrices side by side."""
    plt = _pyplot()
    cm = np.asarray(confusion, dtype=np.int64)
    rows = cm.sum(axis=1, keepdims=True)
    normed = np.divide(cm, rows, out=np.zeros(cm.shape), where=rows > 0)
    k = len(labels)
    size = max(4.0, 0.7 * k + 2.0)
    fig, axes = plt.subplots(1, 2, figsize=(2 * size + 1, size))
    for ax, data, fmt, name in ((axes[0], cm, "d", "counts"), (axes[1], normed, ".2f", "row-normalised")):
        scale = data / data.max() if data.max() > 0 else data
        im = ax.imshow(data, cmap="Blues", vmin=0)
        fig.colorbar(im, ax=ax, fraction=0.046, pad=0.04)
        for i in range(k):
            for j in range(k):
                ax.text(j, i, format(data[i, j], fmt), ha="center", va="center", fontsize=8,
                        color="white" if scale[i, j] > 0.5 else "black")
        ax.set_xticks(range(k), labels, rotation=45, ha="right")
        ax.set_yticks(range(k), labels)
        ax.set(xlabel="predicted", ylabel="true", title=f"{title} {name}".strip())
    return _save(fig, path)


#: crossval looks the confusion plot up by these names too.
plot_confusion_matrix = plot_confusion


def plot_roc(y_true: Any, probs: Any, labels: Sequence[str], path: str | Path, title: str = "ROC (one vs rest)") -> Path:
    """One-vs-rest ROC curve per class, AUC in the legend; classes absent from the truth are listed as n/a."""
    from .metrics import one_vs_rest_roc

    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(6, 6))
    for name, curve in zip(labels, one_vs_rest_roc(y_true, probs)):
        if curve is None:
            ax.plot([], [], linestyle="none", label=f"{name} (AUC n/a)")
            continue
        fpr, tpr, area = curve
        ax.plot(fpr, tpr, label=f"{name} (AUC {area:.3f})")
    ax.plot([0, 1], [0, 1], color="grey", linestyle="--", linewidth=0.8)
    ax.set(xlim=(0, 1), ylim=(0, 1.01), xlabel="false positive rate", ylabel="true positive rate", title=title)
    ax.grid(alpha=0.3)
    ax.legend(loc="lower right", fontsize=8)
    return _save(fig, path)


def plot_reliability(y_true: Any, probs: Any, path: str | Path, n_bins: int = 15, title: str = "") -> Path:
    """Reliability diagram: accuracy vs mean confidence per bin, bin sizes below, ECE in the title."""
    from .metrics import expected_calibration_error, reliability_bins

    plt = _pyplot()
    bins = reliability_bins(y_true, probs, n_bins)
    ece = expected_calibration_error(y_true, probs, n_bins)
    centers = np.array([(b["lower"] + b["upper"]) / 2 for b in bins])
    width = 1.0 / n_bins
    acc = np.array([b["accuracy"] for b in bins])
    conf = np.array([b["confidence"] for b in bins])
    count = np.array([b["count"] for b in bins])
    fig, (ax, ax_n) = plt.subplots(2, 1, figsize=(5, 6), sharex=True, gridspec_kw={"height_ratios": [3, 1]})
    filled = count > 0
    ax.bar(centers[filled], acc[filled], width=width, edgecolor="black", alpha=0.8, label="accuracy")
    ax.bar(centers[filled], conf[filled] - acc[filled], bottom=acc[filled], width=width, color="red", alpha=0.3,
           edgecolor="red", label="gap to confidence")
    ax.plot([0, 1], [0, 1], color="grey", linestyle="--", linewidth=0.8, label="perfect calibration")
    ax.set(ylim=(0, 1), ylabel="accuracy", title=(f"{title} " if title else "") + f"ECE {ece:.3f}")
    ax.legend(loc="upper left", fontsize=8)
    ax.grid(alpha=0.3)
    ax_n.bar(centers, count, width=width, edgecolor="black")
    ax_n.set(xlim=(0, 1), xlabel="confidence (top-1 probability)", ylabel="images")
    return _save(fig, path)


def plot_training_curves(history: Sequence[dict], path: str | Path) -> Path:
    """Loss and accuracy per epoch, train vs validation, and the learning rate when recorded."""
    plt = _pyplot()
    epochs = [h["epoch"] for h in history]
    has_lr = any("lr" in h for h in history)
    fig, axes = plt.subplots(1, 3 if has_lr else 2, figsize=(15 if has_lr else 10, 4))
    ax_loss, ax_acc = axes[0], axes[1]
    for ax, metric in ((ax_loss, "loss"), (ax_acc, "acc")):
        for prefix, label in (("train", "train"), ("val", "validation")):
            key = f"{prefix}_{metric}"
            points = [(e, h[key]) for e, h in zip(epochs, history) if h.get(key) is not None]
            if points:
                ax.plot(*zip(*points), marker="." if len(points) < 30 else None, label=label)
    ax_loss.set(xlabel="epoch", ylabel="loss", title="loss")
    ax_acc.set(xlabel="epoch", ylabel="accuracy", title="accuracy")
    if has_lr:
        points = [(e, h["lr"]) for e, h in zip(epochs, history) if h.get("lr") is not None]
        if points:
            axes[2].plot(*zip(*points))
        axes[2].set(xlabel="epoch", ylabel="learning rate", title="learning rate")
        axes[2].grid(alpha=0.3)
    for ax in (ax_loss, ax_acc):
        ax.grid(alpha=0.3)
        if ax.get_legend_handles_labels()[0]:
            ax.legend()
    return _save(fig, path)


__all__ = ["plot_confusion", "plot_confusion_matrix", "plot_roc", "plot_reliability", "plot_training_curves"]
