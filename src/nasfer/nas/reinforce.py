"""REINFORCE for the controller, as pure functions (Williams 1992; the update NASNet and ENAS use).

The baseline is an exponential moving average of rewards; the advantage uses the baseline from
*before* this reward is folded in, so the estimate stays unbiased (a baseline that already contains
R would shrink every advantage by a factor `decay`).
"""

from __future__ import annotations

import torch


def update_baseline(baseline: float | None, reward: float, decay: float) -> float:
    """b <- decay * b + (1 - decay) * R; the first reward starts the average."""
    if not 0.0 <= decay < 1.0:
        raise ValueError(f"baseline decay must be in [0, 1), got {decay}")
    if baseline is None:
        return float(reward)
    return decay * baseline + (1.0 - decay) * float(reward)


def policy_loss(log_prob: torch.Tensor, entropy: torch.Tensor, reward: float, baseline: float,
                entropy_weight: float) -> torch.Tensor:
    """-(R - b) * sum_t log p(a_t) - entropy_weight * entropy: minimising it ascends the expected reward."""
    return -(float(reward) - float(baseline)) * log_prob - entropy_weight * entropy
