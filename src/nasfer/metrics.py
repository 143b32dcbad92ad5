"""Classification metrics in pure numpy: the numbers `nasfer evaluate` reports and tests check against sklearn.

No scikit-learn at run time (it is a test dependency only) and no warnings: every ratio whose
denominator is zero is 0.0, every curve or AUC that is undefined (a class with no positive or no
negative sample) is None. Conventions:

- `confusion[i, j]` counts samples of true class i predicted as j (rows = truth).
- Macro averages run over the classes present in the truth (support > 0). A class the dataset lacks
  (CK+ has no 'neutral') says nothing about the model, so it must not pull the average to 0. This is
  sklearn's `precision_recall_fscore_support(..., labels=<classes in y_true>, average="macro")`.
- ROC curves are one-vs-rest on each class's probability, with sklearn's threshold and tie handling
  (one point per distinct score, first threshold +inf), AUC by the trapezoid rule.
- Calibration uses the top-1 confidence in equal-width bins (lower, upper], the first bin closed.
"""

from __future__ import annotations

from typing import Any, Sequence

import numpy as np


def _as_labels(y: Any) -> np.ndarray:
    return np.asarray(y, dtype=np.int64).reshape(-1)


def _as_probs(probs: Any, n: int | None = None) -> np.ndarray:
    p = np.asarray(probs, dtype=np.float64)
    if p.ndim != 2:
        raise ValueError(f"probabilities must be a 2-D array (N, K), got shape {p.shape}")
    if n is not None and len(p) != n:
        raise ValueError(f"{len(p)} probability rows for {n} labels")
    return p


def _safe_div(num: np.ndarray, den: np.ndarray) -> np.ndarray:
    """num / den elementwise with 0.0 where den == 0 (no warning)."""
    num = np.asarray(num, dtype=np.float64)
    den = np.asarray(den, dtype=np.float64)
    return np.divide(num, den, out=np.zeros(np.broadcast(num, den).shape), where=den != 0)


# ---------------------------------------------------------------------------- counts


def confusion_matrix(y_true: Any, y_pred: Any, num_classes: int) -> np.ndarray:
    """(K, K) int64 counts, rows = truth, columns = prediction."""
    t, p = _as_labels(y_true), _as_labels(y_pred)
    if len(t) != len(p):
        raise ValueError(f"{len(t)} true labels for {len(p)} predictions")
    for name, arr in (("true", t), ("predicted", p)):
        if len(arr) and (arr.min() < 0 or arr.max() >= num_classes):
            raise ValueError(f"{name} labels must lie in [0, {num_classes}), got {arr.min()}..{arr.max()}")
    return np.bincount(t * num_classes + p, minlength=num_classes * num_classes).reshape(num_classes, num_classes)


def per_class_scores(confusion: np.ndarray) -> dict[str, np.ndarray]:
    """precision, recall, f1 (float64) and support (int64) per class from a confusion matrix."""
    cm = np.asarray(confusion, dtype=np.int64)
    tp = np.diag(cm).astype(np.float64)
    support = cm.sum(axis=1)
    predicted = cm.sum(axis=0)
    precision = _safe_div(tp, predicted)
    recall = _safe_div(tp, support)
    f1 = _safe_div(2 * precision * recall, precision + recall)
    return {"precision": precision, "recall": recall, "f1": f1, "support": support}


def macro_average(values: np.ndarray, support: np.ndarray) -> float:
    """Mean over the classes present in the truth (support > 0); 0.0 when none is."""
    present = np.asarray(support) > 0
    return float(np.asarray(values, dtype=np.float64)[present].mean()) if present.any() else 0.0


def weighted_average(values: np.ndarray, support: np.ndarray) -> float:
    """Support-weighted mean (sklearn's average='weighted'); 0.0 on an empty truth."""
    s = np.asarray(support, dtype=np.float64)
    total = s.sum()
    return float((np.asarray(values, dtype=np.float64) * s).sum() / total) if total > 0 else 0.0


def accuracy(y_true: Any, y_pred: Any) -> float:
    t, p = _as_labels(y_true), _as_labels(y_pred)
    return float((t == p).mean()) if len(t) else 0.0


def top_k_accuracy(y_true: Any, probs: Any, k: int = 2) -> float:
    """Share of samples whose true class is among the k highest scores.

    The true class counts as top-k when fewer than k classes score strictly higher, so ties never
    depend on class order.
    """
    t = _as_labels(y_true)
    p = _as_probs(probs, len(t))
    if not len(t):
        return 0.0
    own = p[np.arange(len(t)), t]
    higher = (p > own[:, None]).sum(axis=1)
    return float((higher < k).mean())


# ---------------------------------------------------------------------------- ROC


def roc_curve(y_true: Any, scores: Any, drop_intermediate: bool = True) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(fpr, tpr, thresholds) of binary labels (1 = positive) against scores, as sklearn computes them.

    One point per distinct score (tied samples move together), collinear points dropped with
    `drop_intermediate`, the first threshold +inf so the curve starts at (0, 0). A rate whose
    denominator is zero (no negatives / no positives) is all NaN, silently.
    """
    y = np.asarray(y_true).reshape(-1).astype(bool)
    s = np.asarray(scores, dtype=np.float64).reshape(-1)
    if len(y) != len(s):
        raise ValueError(f"{len(y)} labels for {len(s)} scores")
    if not len(y):
        return np.zeros(1), np.zeros(1), np.array([np.inf])
    order = np.argsort(s, kind="mergesort")[::-1]
    s, y = s[order], y[order]
    distinct = np.where(np.diff(s))[0]
    idx = np.r_[distinct, len(y) - 1]
    tps = np.cumsum(y, dtype=np.float64)[idx]
    fps = 1.0 + idx - tps
    thresholds = s[idx]
    if drop_intermediate and len(fps) > 2:
        keep = np.r_[True, np.logical_or(np.diff(fps, 2), np.diff(tps, 2)), True]
        fps, tps, thresholds = fps[keep], tps[keep], thresholds[keep]
    fps, tps = np.r_[0.0, fps], np.r_[0.0, tps]
    thresholds = np.r_[np.inf, thresholds]
    fpr = fps / fps[-1] if fps[-1] > 0 else np.full(fps.shape, np.nan)
    tpr = tps / tps[-1] if tps[-1] > 0 else np.full(tps.shape, np.nan)
    return fpr, tpr, thresholds


def auc(x: np.ndarray, y: np.ndarray) -> float:
    """Area under a curve by the trapezoid rule (x monotonic)."""
    x, y = np.asarray(x, dtype=np.float64), np.asarray(y, dtype=np.float64)
    if len(x) < 2:
        return 0.0
    return float(np.abs(np.sum(np.diff(x) * (y[1:] + y[:-1]) / 2.0)))


def binary_roc_auc(y_true: Any, scores: Any) -> float | None:
    """ROC AUC of one binary problem; None when the truth has no positive or no negative."""
    y = np.asarray(y_true).reshape(-1).astype(bool)
    if y.all() or not y.any():
        return None
    fpr, tpr, _ = roc_curve(y, scores)
    return auc(fpr, tpr)


def one_vs_rest_roc(y_true: Any, probs: Any) -> list[tuple[np.ndarray, np.ndarray, float] | None]:
    """Per class: (fpr, tpr, auc) of class k vs the rest on probs[:, k], or None where undefined."""
    t = _as_labels(y_true)
    p = _as_probs(probs, len(t))
    curves: list[tuple[np.ndarray, np.ndarray, float] | None] = []
    for k in range(p.shape[1]):
        positive = t == k
        if positive.all() or not positive.any():
            curves.append(None)
            continue
        fpr, tpr, _ = roc_curve(positive, p[:, k])
        curves.append((fpr, tpr, auc(fpr, tpr)))
    return curves


# ---------------------------------------------------------------------------- calibration


def reliability_bins(y_true: Any, probs: Any, n_bins: int = 15) -> list[dict[str, float | int]]:
    """Top-1 confidence vs accuracy in `n_bins` equal-width bins (empty bins: count 0, values 0.0)."""
    t = _as_labels(y_true)
    p = _as_probs(probs, len(t))
    edges = np.linspace(0.0, 1.0, n_bins + 1)
    if len(t):
        confidence = p.max(axis=1)
        correct = (p.argmax(axis=1) == t).astype(np.float64)
        # (lower, upper] bins; confidence 0 (never the top-1 of a distribution) goes to the first.
        which = np.clip(np.searchsorted(edges, confidence, side="left") - 1, 0, n_bins - 1)
    else:
        confidence = correct = np.zeros(0)
        which = np.zeros(0, dtype=np.int64)
    count = np.bincount(which, minlength=n_bins)
    conf_sum = np.bincount(which, weights=confidence, minlength=n_bins)
    acc_sum = np.bincount(which, weights=correct, minlength=n_bins)
    mean_conf, mean_acc = _safe_div(conf_sum, count), _safe_div(acc_sum, count)
    return [{"lower": float(edges[b]), "upper": float(edges[b + 1]), "count": int(count[b]),
             "confidence": float(mean_conf[b]), "accuracy": float(mean_acc[b])} for b in range(n_bins)]


def expected_calibration_error(y_true: Any, probs: Any, n_bins: int = 15) -> float:
    """ECE: sum over bins of |accuracy - confidence| weighted by the bin's share of samples."""
    bins = reliability_bins(y_true, probs, n_bins)
    n = sum(b["count"] for b in bins)
    if not n:
        return 0.0
    return float(sum(b["count"] * abs(b["accuracy"] - b["confidence"]) for b in bins) / n)


# ---------------------------------------------------------------------------- report


def classification_report(y_true: Any, probs: Any, label_names: Sequence[str]) -> dict[str, Any]:
    """The metric fields of the `nasfer evaluate` JSON (DESIGN.md), as plain JSON-safe types.

    y_true: int class ids (N,) into `label_names`; probs: (N, K) scores with K = len(label_names).
    """
    names = [str(n) for n in label_names]
    k = len(names)
    t = _as_labels(y_true)
    p = _as_probs(probs, len(t)) if len(t) else np.zeros((0, k))
    if p.shape[1] != k:
        raise ValueError(f"{p.shape[1]} probability columns for {k} labels")
    pred = p.argmax(axis=1) if len(t) else np.zeros(0, dtype=np.int64)
    cm = confusion_matrix(t, pred, k)
    scores = per_class_scores(cm)
    support = scores["support"]
    curves = one_vs_rest_roc(t, p)
    return {
        "n": int(len(t)),
        "labels": names,
        "accuracy": accuracy(t, pred),
        "macro_f1": macro_average(scores["f1"], support),
        "macro_precision": macro_average(scores["precision"], support),
        "macro_recall": macro_average(scores["recall"], support),
        "weighted_f1": weighted_average(scores["f1"], support),
        "per_class": {
            name: {"precision": float(scores["precision"][i]), "recall": float(scores["recall"][i]),
                   "f1": float(scores["f1"][i]), "support": int(support[i])}
            for i, name in enumerate(names)
        },
        "confusion": cm.tolist(),
        "roc_auc": {name: (None if c is None else float(c[2])) for name, c in zip(names, curves)},
        "ece": expected_calibration_error(t, p),
        "top2_accuracy": top_k_accuracy(t, p, 2),
    }


__all__ = [
    "confusion_matrix", "per_class_scores", "macro_average", "weighted_average", "accuracy", "top_k_accuracy",
    "roc_curve", "auc", "binary_roc_auc", "one_vs_rest_roc", "reliability_bins", "expected_calibration_error",
    "classification_report",
]
