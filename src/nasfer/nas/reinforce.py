"""Batched REINFORCE for the controller, as pure functions (Williams 1992).

A batch of B children sampled from the same policy is scored, and the advantages are the rewards
standardised *within the batch*, A_i = (R_i - mean R) / (std R + eps): the batch mean is the
baseline, and dividing by the spread makes the step size independent of the reward's scale (seed noise
of +-0.04 and a latency factor give rewards whose spread varies across searches). The loss is

    L = -(1/B) sum_i A_i log p(a_i)  -  beta * (1/B) sum_i H_i

where H_i is the entropy (nats, summed over decisions) along child i's decisions. With unit-variance
advantages the policy term's gradient is O(1) per decision, so beta around 1e-2 keeps the entropy
bonus within an order of magnitude of it (see `ReinforceStrategy`, which logs both gradient norms),
unlike NASNet's per-child update with beta = 1e-4 and raw advantages of a few hundredths, where the
bonus was about 300x smaller and the policy collapsed onto seed noise.
"""

from __future__ import annotations

from typing import Sequence

import torch


def standardized_advantages(rewards: Sequence[float], eps: float = 1e-8) -> torch.Tensor:
    """(R - mean R) / (std R + eps) as float32 (B,); all zeros when the rewards are all equal or B < 2."""
    r = torch.tensor([float(x) for x in rewards], dtype=torch.float32)
    if len(r) < 2:
        return torch.zeros_like(r)
    std = r.std(unbiased=False)
    if float(std) < 1e-12:
        return torch.zeros_like(r)
    return (r - r.mean()) / (std + eps)


def policy_loss(log_probs: torch.Tensor, entropies: torch.Tensor, advantages: torch.Tensor) -> torch.Tensor:
    """-(mean of A_i log p_i): the policy term (minimising it ascends the expected reward)."""
    return -(advantages * log_probs).mean()


def entropy_bonus(entropies: torch.Tensor, weight: float) -> torch.Tensor:
    """-weight * mean entropy: the term added to the loss so that minimising it keeps the policy broad."""
    return -float(weight) * entropies.mean()
