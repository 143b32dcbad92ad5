"""Ensemble selection on a validation split: which members, with which weights.

Greedy forward selection with replacement, initialised with the best single model (Caruana,
Niculescu-Mizil, Crew, Ksikes, "Ensemble Selection from Libraries of Models", ICML 2004): each round
adds the member (possibly one already in) whose addition gives the averaged probabilities the best
validation score; a member's weight is how often it was added. The score is the mean negative
log-likelihood (Caruana et al. hill-climb on any metric): on a few thousand validation images accuracy
moves in steps of one image, so climbing on it follows single images (noise) and can hand a member a
weight for one image's gain; the log-likelihood, a proper scoring rule, is smooth. Ties go to the higher
accuracy. The ensemble kept is the best of all rounds, so its size is chosen on validation too. Pure
NumPy; no test images are ever involved (the caller passes validation data).
"""

from __future__ import annotations

import numpy as np

#: What the selection climbs on (recorded in the ensemble's card).
CRITERION = "validation negative log-likelihood"


def validation_score(probs: np.ndarray, y: np.ndarray) -> tuple[float, float]:
    """(accuracy, mean negative log-likelihood) of probabilities float (N, K) for labels int (N,)."""
    probs = np.asarray(probs, dtype=np.float64)
    y = np.asarray(y)
    acc = float(np.mean(probs.argmax(1) == y)) if len(y) else 0.0
    nll = float(-np.mean(np.log(np.clip(probs[np.arange(len(y)), y], 1e-12, None)))) if len(y) else 0.0
    return acc, nll


def greedy_selection(probs: np.ndarray, y: np.ndarray, rounds: int = 25, max_members: int = 0) -> np.ndarray:
    """Weights float64 (M,) summing to 1 for M members' validation probabilities `probs` (M, N, K).

    `rounds`: additions after the initial best member (ties between members go to the lower index,
    so the result is deterministic). `max_members` (0: no cap): once that many distinct members are
    in, only they can be added again, so at most that many have a weight (the inference cost of the
    ensemble grows with its distinct members, not with its rounds). ValueError for empty or inconsistent
    input, rounds < 0 or max_members < 0.
    """
    probs = np.asarray(probs, dtype=np.float64)
    y = np.asarray(y)
    if probs.ndim != 3 or probs.shape[0] < 1 or probs.shape[1] != len(y) or len(y) == 0:
        raise ValueError(f"expected probabilities (M, N, K) for N = {len(y)} labels, got shape {probs.shape}")
    if rounds < 0:
        raise ValueError(f"rounds must be >= 0, got {rounds}")
    if max_members < 0:
        raise ValueError(f"max_members must be >= 0 (0: no cap), got {max_members}")

    def key(p: np.ndarray) -> tuple[float, float]:
        acc, nll = validation_score(p, y)
        return -nll, acc  # larger is better on both

    counts = np.zeros(len(probs), dtype=np.int64)
    first = max(range(len(probs)), key=lambda i: (key(probs[i]), -i))
    counts[first] = 1
    total = probs[first].copy()
    best_counts, best_key = counts.copy(), key(total)
    for _ in range(rounds):
        n = counts.sum()
        full = max_members and np.count_nonzero(counts) >= max_members
        allowed = np.flatnonzero(counts) if full else range(len(probs))
        candidates = [(key((total + probs[i]) / (n + 1)), -i) for i in allowed]
        (_, neg_i) = max(candidates)
        i = -neg_i
        counts[i] += 1
        total += probs[i]
        current = key(total / counts.sum())
        if current > best_key:
            best_counts, best_key = counts.copy(), current
    return best_counts / best_counts.sum()


__all__ = ["CRITERION", "greedy_selection", "validation_score"]
