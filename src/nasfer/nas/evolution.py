"""Regularized (aging) evolution, Real et al. 2019 ("Regularized Evolution for Image Classifier
Architecture Search", Algorithm 1), on any declared search space.

The first `population` proposals are uniform samples (from a random stream of its own: random search
with the same seed starts with other children). After that, each proposal takes a tournament of
`sample_size` members drawn uniformly from the population, with replacement as in Algorithm 1, and
mutates the best of them (one decision changed so that the architecture changes, `SearchSpace.mutate`).
Every told child joins the population and the *oldest* member leaves (aging, not the worst: a lucky noisy
reward cannot stay forever).
"""

from __future__ import annotations

import math
import random
from collections import deque
from typing import Any, Sequence

from .space import SearchSpace
from .strategy import Values, _rng_state, _set_rng_state, uniform_entropy


class RegularizedEvolution:
    """Aging evolution. Raises ValueError unless 2 <= sample_size <= population."""

    name = "evolution"

    def __init__(self, space: SearchSpace, *, seed: int = 0, population: int = 20, sample_size: int = 5):
        if not 2 <= sample_size <= population:
            raise ValueError(f"evolution needs 2 <= sample_size <= population, got {sample_size} and {population}")
        self.space = space
        self.population_size, self.sample_size = int(population), int(sample_size)
        self.rng = random.Random(f"{self.name}:{seed}")
        self.population: deque[tuple[Values, float]] = deque()
        self.told = 0
        self.best: tuple[Values, float] | None = None
        self.entropy = uniform_entropy(space)

    def ask(self) -> Values:
        if self.told < self.population_size or len(self.population) < self.sample_size:
            return self.space.sample(self.rng)
        tournament = [self.rng.choice(self.population) for _ in range(self.sample_size)]
        parent = max(tournament, key=lambda member: member[1])[0]
        return self.space.mutate(parent, self.rng)

    def tell(self, values: Sequence[int], reward: float) -> dict[str, float]:
        values = self.space.check(values)
        if math.isnan(reward):
            return {"entropy": self.entropy, "dropped": 1.0}
        self.population.append((values, float(reward)))
        if len(self.population) > self.population_size:
            self.population.popleft()  # the oldest dies
        self.told += 1
        if self.best is None or reward > self.best[1]:
            self.best = (values, float(reward))
        mean = sum(r for _, r in self.population) / len(self.population)
        return {"entropy": self.entropy, "population_mean": mean}

    def best_guess(self) -> Values | None:
        return None if self.best is None else self.best[0]

    def state_dict(self) -> dict[str, Any]:
        return {"rng": _rng_state(self.rng), "population": [[list(v), r] for v, r in self.population],
                "told": self.told, "best": None if self.best is None else [list(self.best[0]), self.best[1]]}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        _set_rng_state(self.rng, state["rng"])
        self.population = deque((tuple(v), float(r)) for v, r in state["population"])
        self.told = int(state["told"])
        self.best = None if state["best"] is None else (tuple(state["best"][0]), float(state["best"][1]))
