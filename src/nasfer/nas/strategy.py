"""Search strategies with one ask/tell interface (NNI-style), so they run on any reward.

`ask()` proposes a genotype, `tell(genotype, reward)` learns from its reward and returns numbers
worth logging. The strategy never sees data or models: the evaluator turns a genotype into a reward,
which is what lets a strategy be tested on a toy reward whose optimum is known.
"""

from __future__ import annotations

import math
from typing import Any, Callable, Protocol, Sequence

import torch

from .controller import Controller, random_genotype
from .genotype import OP_NAMES, Genotype
from .reinforce import policy_loss, update_baseline


class Strategy(Protocol):
    name: str

    def ask(self) -> Genotype: ...

    def tell(self, genotype: Genotype, reward: float) -> dict[str, float]: ...

    def best_guess(self) -> Genotype | None: ...

    def state_dict(self) -> dict[str, Any]: ...

    def load_state_dict(self, state: dict[str, Any]) -> None: ...


class ReinforceStrategy:
    """The LSTM controller trained with REINFORCE and a moving-average baseline (NASNet, ENAS)."""

    name = "reinforce"

    def __init__(self, blocks: int = 5, *, lr: float = 3.5e-3, entropy_weight: float = 1e-4,
                 baseline_decay: float = 0.95, temperature: float = 5.0, tanh_constant: float = 2.5,
                 seed: int = 0, ops: Sequence[str] = OP_NAMES):
        with torch.random.fork_rng():  # the controller's init must not move anyone else's RNG
            torch.manual_seed(seed)
            self.controller = Controller(blocks, ops, temperature=temperature, tanh_constant=tanh_constant)
        self.optimizer = torch.optim.Adam(self.controller.parameters(), lr=lr)
        self.generator = torch.Generator().manual_seed(seed)
        self.entropy_weight = entropy_weight
        self.baseline_decay = baseline_decay
        self.baseline: float | None = None

    def ask(self) -> Genotype:
        with torch.no_grad():
            genotype, _, _ = self.controller.sample(self.generator)
        return genotype

    def tell(self, genotype: Genotype, reward: float) -> dict[str, float]:
        log_prob, entropy = self.controller.log_prob(genotype)
        baseline = float(reward) if self.baseline is None else self.baseline
        loss = policy_loss(log_prob, entropy, reward, baseline, self.entropy_weight)
        self.optimizer.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(self.controller.parameters(), 5.0)
        self.optimizer.step()
        self.baseline = update_baseline(self.baseline, reward, self.baseline_decay)
        return {"baseline": self.baseline, "advantage": float(reward) - baseline,
                "entropy": entropy.item(), "log_prob": log_prob.item()}

    def best_guess(self) -> Genotype:
        """The controller's most likely genotype (argmax at every decision)."""
        with torch.no_grad():
            genotype, _, _ = self.controller.sample(greedy=True)
        return genotype

    def state_dict(self) -> dict[str, Any]:
        return {"controller": self.controller.state_dict(), "optimizer": self.optimizer.state_dict(),
                "generator": self.generator.get_state(), "baseline": self.baseline}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.controller.load_state_dict(state["controller"])
        self.optimizer.load_state_dict(state["optimizer"])
        self.generator.set_state(state["generator"])
        self.baseline = state["baseline"]


class RandomStrategy:
    """Uniform sampling with the same budget: what any learned strategy has to beat."""

    name = "random"

    def __init__(self, blocks: int = 5, *, baseline_decay: float = 0.95, seed: int = 0,
                 ops: Sequence[str] = OP_NAMES):
        self.blocks = blocks
        self.ops = tuple(ops)
        self.generator = torch.Generator().manual_seed(seed)
        self.baseline_decay = baseline_decay
        self.baseline: float | None = None
        # Entropy of the uniform policy, summed over the decisions (for logs comparable to REINFORCE's).
        per_cell = sum(2 * math.log(i + 2) + 2 * math.log(len(self.ops)) for i in range(blocks))
        self.entropy = 2 * per_cell

    def ask(self) -> Genotype:
        return random_genotype(self.blocks, self.ops, self.generator)

    def tell(self, genotype: Genotype, reward: float) -> dict[str, float]:
        baseline = float(reward) if self.baseline is None else self.baseline
        self.baseline = update_baseline(self.baseline, reward, self.baseline_decay)
        return {"baseline": self.baseline, "advantage": float(reward) - baseline, "entropy": self.entropy}

    def best_guess(self) -> None:
        return None

    def state_dict(self) -> dict[str, Any]:
        return {"generator": self.generator.get_state(), "baseline": self.baseline}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.generator.set_state(state["generator"])
        self.baseline = state["baseline"]


def run_strategy(strategy: Strategy, reward_fn: Callable[[Genotype], float], steps: int) -> list[float]:
    """Ask, score, tell `steps` times; the rewards in order (for toy problems and tests)."""
    rewards = []
    for _ in range(steps):
        genotype = strategy.ask()
        reward = float(reward_fn(genotype))
        strategy.tell(genotype, reward)
        rewards.append(reward)
    return rewards
