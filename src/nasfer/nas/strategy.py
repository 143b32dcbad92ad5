"""Search strategies behind one ask/tell interface, on any declared search space.

The interface (stable; a Ray Tune `Searcher` wraps it one to one):

    strategy = make_strategy(name, space, seed=0, **options)   # name in STRATEGIES
    values = strategy.ask()          # tuple[int, ...]: one choice index per space.decisions,
                                     # or None = "wait": batched REINFORCE has B children out and
                                     # proposes no more until their rewards are told
    spec = space.decode(values)      # the architecture (JSON), what the evaluator trains
    stats = strategy.tell(values, reward)   # float reward (higher is better); returns loggable floats
    strategy.best_guess()            # values the strategy believes best (or None)
    state = strategy.state_dict(); strategy.load_state_dict(state)   # resumable; torch.save-able and
                                     # loadable with torch.load(weights_only=True)

Ray Tune mapping: `Searcher.suggest(trial_id)` -> `ask()` (None -> return None, Tune retries later),
remember trial_id -> values, config = {"values": list(values), "spec": space.decode(values)};
`on_trial_complete(trial_id, result)` -> `tell(values, result[metric])`. Rewards must come from one
fidelity (the rung-0 proxy of `nasfer.nas.scheduler`), so a scheduler's promotions never reach `tell`.
`tell` accepts values that `ask` did not propose (e.g. seeded points); they enter REINFORCE's batch too.
A proposal that failed (an errored trial) is told with reward NaN: it is dropped (REINFORCE stops waiting
for it; evolution and random ignore it) and the returned stats hold {"dropped": 1.0}.

Strategies see no data or models, which is what lets them be tested on toy rewards with a known optimum:

- `reinforce`: the LSTM controller (`controller.Controller`), updated with batched REINFORCE
  (`reinforce`: within-batch standardised advantages, entropy bonus) after every `batch_size` tells;
- `random`: uniform sampling, the control every learned strategy has to beat (Li & Talwalkar 2019);
- `evolution`: regularized (aging) evolution with tournament selection (Real et al. 2019, Algorithm 1;
  `nasfer.nas.evolution`).
"""

from __future__ import annotations

import math
import random
from typing import Any, Callable, Protocol, Sequence

import torch

from .controller import Controller
from .reinforce import entropy_bonus, policy_loss, standardized_advantages
from .space import SearchSpace

Values = tuple[int, ...]


class Strategy(Protocol):
    name: str
    space: SearchSpace

    def ask(self) -> Values | None: ...

    def tell(self, values: Sequence[int], reward: float) -> dict[str, float]: ...

    def best_guess(self) -> Values | None: ...

    def state_dict(self) -> dict[str, Any]: ...

    def load_state_dict(self, state: dict[str, Any]) -> None: ...


def uniform_entropy(space: SearchSpace) -> float:
    """Entropy in nats of the uniform policy over all decisions (the maximum the controller can have)."""
    return sum(math.log(d.size) for d in space.decisions)


def _grad_norm(loss: torch.Tensor, params: list[torch.nn.Parameter]) -> float:
    grads = torch.autograd.grad(loss, params, retain_graph=True, allow_unused=True)
    return float(torch.sqrt(sum((g ** 2).sum() for g in grads if g is not None)))


class ReinforceStrategy:
    """The LSTM controller trained by batched REINFORCE (Zoph & Le 2017; NASNet; ENAS' controller).

    `batch_size` children are sampled from one policy; after their `batch_size` rewards are told, one
    Adam step on `reinforce.policy_loss + reinforce.entropy_bonus` (gradient norm clipped to 5).
    `tell` returns the running entropy and, on update steps, the norms of both terms' gradients, so a
    log shows whether the entropy bonus stays comparable to the policy term.
    """

    name = "reinforce"

    def __init__(self, space: SearchSpace, *, seed: int = 0, batch_size: int = 8, lr: float = 0.05,
                 entropy_weight: float = 0.05, temperature: float = 5.0, tanh_constant: float = 2.5):
        if batch_size < 2:
            raise ValueError(f"REINFORCE needs batches of at least 2 children (advantages are standardised "
                             f"within the batch), got {batch_size}")
        self.space = space
        with torch.random.fork_rng():  # the controller's init must not move anyone else's RNG
            torch.manual_seed(seed)
            self.controller = Controller(space.decisions, temperature=temperature, tanh_constant=tanh_constant)
        self.optimizer = torch.optim.Adam(self.controller.parameters(), lr=lr)
        self.generator = torch.Generator().manual_seed(seed)
        self.batch_size, self.entropy_weight = int(batch_size), float(entropy_weight)
        self.pending: list[tuple[Values, float]] = []
        self.outstanding = 0
        self.updates = 0
        self.entropy = uniform_entropy(space)

    def ask(self) -> Values | None:
        if self.outstanding + len(self.pending) >= self.batch_size:
            return None  # the batch is out: wait for its rewards
        with torch.no_grad():
            values, _, entropy = self.controller.sample(self.generator)
        self.entropy = float(entropy)
        self.outstanding += 1
        return values

    def tell(self, values: Sequence[int], reward: float) -> dict[str, float]:
        values = self.space.check(values)
        self.outstanding = max(0, self.outstanding - 1)
        if math.isnan(reward):
            return {"entropy": self.entropy, "updated": 0.0, "updates": float(self.updates), "dropped": 1.0}
        self.pending.append((values, float(reward)))
        stats: dict[str, float] = {"entropy": self.entropy, "updated": 0.0, "updates": float(self.updates)}
        if len(self.pending) >= self.batch_size:
            stats.update(self._update())
        return stats

    def _update(self) -> dict[str, float]:
        batch, self.pending = self.pending, []
        scored = [self.controller.log_prob(v) for v, _ in batch]
        log_probs = torch.stack([lp for lp, _ in scored])
        entropies = torch.stack([h for _, h in scored])
        rewards = [r for _, r in batch]
        advantages = standardized_advantages(rewards)
        policy = policy_loss(log_probs, entropies, advantages)
        bonus = entropy_bonus(entropies, self.entropy_weight)
        params = [p for p in self.controller.parameters() if p.requires_grad]
        norms = {"policy_grad_norm": _grad_norm(policy, params), "entropy_grad_norm": _grad_norm(bonus, params)}
        self.optimizer.zero_grad(set_to_none=True)
        (policy + bonus).backward()
        torch.nn.utils.clip_grad_norm_(params, 5.0)
        self.optimizer.step()
        self.updates += 1
        self.entropy = float(entropies.detach().mean())
        return {"updated": 1.0, "updates": float(self.updates), "baseline": float(sum(rewards) / len(rewards)),
                "entropy": self.entropy, **norms}

    def best_guess(self) -> Values:
        """The controller's most likely values (argmax at every decision)."""
        with torch.no_grad():
            values, _, _ = self.controller.sample(greedy=True)
        return values

    def state_dict(self) -> dict[str, Any]:
        return {"controller": self.controller.state_dict(), "optimizer": self.optimizer.state_dict(),
                "generator": self.generator.get_state(), "pending": [[list(v), r] for v, r in self.pending],
                "outstanding": self.outstanding, "updates": self.updates, "entropy": self.entropy}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.controller.load_state_dict(state["controller"])
        self.optimizer.load_state_dict(state["optimizer"])
        self.generator.set_state(state["generator"])
        self.pending = [(tuple(v), float(r)) for v, r in state["pending"]]
        self.outstanding, self.updates = int(state["outstanding"]), int(state["updates"])
        self.entropy = float(state["entropy"])


class RandomStrategy:
    """Uniform sampling over the declared decisions with the same budget: the control."""

    name = "random"

    def __init__(self, space: SearchSpace, *, seed: int = 0):
        self.space = space
        self.rng = random.Random(f"{self.name}:{seed}")  # its own stream: not evolution's first samples
        self.entropy = uniform_entropy(space)
        self.best: tuple[Values, float] | None = None

    def ask(self) -> Values:
        return self.space.sample(self.rng)

    def tell(self, values: Sequence[int], reward: float) -> dict[str, float]:
        values = self.space.check(values)
        if math.isnan(reward):
            return {"entropy": self.entropy, "dropped": 1.0}
        if self.best is None or reward > self.best[1]:
            self.best = (values, float(reward))
        return {"entropy": self.entropy}

    def best_guess(self) -> Values | None:
        return None if self.best is None else self.best[0]

    def state_dict(self) -> dict[str, Any]:
        return {"rng": _rng_state(self.rng), "best": None if self.best is None else [list(self.best[0]), self.best[1]]}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        _set_rng_state(self.rng, state["rng"])
        self.best = None if state["best"] is None else (tuple(state["best"][0]), float(state["best"][1]))


def _rng_state(rng: random.Random) -> list[Any]:
    version, internal, gauss = rng.getstate()
    return [version, list(internal), gauss]


def _set_rng_state(rng: random.Random, state: Sequence[Any]) -> None:
    rng.setstate((state[0], tuple(state[1]), state[2]))


def _evolution(space: SearchSpace, **kwargs: Any):
    from .evolution import RegularizedEvolution

    return RegularizedEvolution(space, **kwargs)


STRATEGIES: dict[str, Callable[..., Strategy]] = {
    "reinforce": ReinforceStrategy, "random": RandomStrategy, "evolution": _evolution,
}


def make_strategy(name: str, space: SearchSpace, **options: Any) -> Strategy:
    """The registered strategy `name` on `space`; ValueError for an unknown name."""
    if name not in STRATEGIES:
        raise ValueError(f"unknown strategy {name!r}; choose one of {', '.join(STRATEGIES)}")
    return STRATEGIES[name](space, **options)


def run_strategy(strategy: Strategy, reward_fn: Callable[[Values], float], steps: int) -> list[float]:
    """Ask, score, tell `steps` times (sequentially, so a batch is always told before the next ask)."""
    rewards = []
    for _ in range(steps):
        values = strategy.ask()
        if values is None:
            raise RuntimeError("strategy is waiting for rewards although every proposal was told")
        reward = float(reward_fn(values))
        strategy.tell(values, reward)
        rewards.append(reward)
    return rewards
