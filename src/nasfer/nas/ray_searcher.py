"""The project's search strategies as a Ray Tune `Searcher` (https://docs.ray.io/en/latest/tune/api/suggestion.html).

`StrategySearcher` wraps any strategy of `nasfer.nas.strategy` through its ask/tell interface:

- `suggest(trial_id)` -> `strategy.ask()`; the trial's config is {"values": [...], "spec": {...},
  "child": n}. `ask()` returning None (batched REINFORCE with its batch out) makes `suggest` return
  None, which tells Tune to ask again later: the batch's rewards come first.
- `on_trial_result` -> `strategy.tell(values, reward)` on the trial's first result, the rung-0
  (cheapest fidelity) score, so the strategy learns from one fidelity only; later results are the
  scheduler's (ASHA) business. Every result, at every rung, is passed to `on_result` for the logs
  (the result on which ASHA stops a trial arrives through `on_trial_complete`: handled the same way).
- `on_trial_complete` without a rung-0 result (the trial failed) -> `tell(values, nan)`, the
  strategy contract's "dropped" (`nasfer.nas.strategy`), as the local backend tells a failed child:
  not a reward, so it does not pull the strategy towards or away from that architecture, and a
  REINFORCE batch never waits forever. A trial that ends without a result after the budget is spent
  was cut by the budget's end: it is not counted.
- A child whose architecture was already scored (same `space.key`) is not trained again: the
  strategy is told the known reward at once (`on_told` with kind "duplicate"), as the local backend
  does; one proposed while its twin is still training is told when the twin's reward arrives. The
  twin of a failed child is told NaN too (dropped, not tried again).
- After `budget_s` of search time (summed over interrupted sessions) or `max_children` children,
  `suggest` returns `Searcher.FINISHED`; running trials finish.
- `save`/`restore`: the strategy's `state_dict`, the trials waiting for their reward and the clock,
  so `Tuner.restore` continues the search where it stopped.

This module imports Ray: only the Ray backend (`nasfer.nas.ray_backend`) imports it, when it runs.
"""

from __future__ import annotations

import math
import time
from typing import Any, Callable

from ray.tune.search import Searcher

#: Name of the reported metric the strategy is told (higher is better).
METRIC = "reward"
#: Name of the reported rung index (0: the cheapest fidelity).
RUNG = "rung"
#: Known architectures told in one `suggest` call before it gives Tune back control.
MAX_DUPLICATES_PER_SUGGEST = 100


class StrategySearcher(Searcher):
    """A search strategy as a Tune Searcher (see the module docstring).

    strategy: a `nasfer.nas.strategy` Strategy; space: its SearchSpace (decodes values into specs);
    budget_s: search time after which no more children are proposed (summed over sessions);
    max_children: also stop after this many children (0: no limit); on_told(event) / on_result(event) /
    on_finished(): driver-side callbacks for the logs, picklable (Tune pickles the searcher with the
    experiment); on_finished is called once, when the budget is spent and no more children will come;
    on_save(elapsed_s) with every checkpoint Tune takes of the searcher; clock(): the search time spent by the
    driver's own record (`nasfer.nas.ray_backend.SearchFiles.spent`: ray_clock.json, written at every log
    line), which may be ahead of the searcher's last Tune checkpoint, read when the searcher is made and when
    it is restored: a callable, not a number, since `Tuner.restore` brings back the searcher pickled when the
    search began, not one made for this session. limits(): this session's (budget_s, max_children), read when
    the searcher is restored, for the same reason (both may change when a search continues); None: keep them.
    """

    def __init__(self, strategy: Any, space: Any, *, budget_s: float, max_children: int = 0,
                 on_told: Callable[[dict[str, Any]], None] | None = None,
                 on_result: Callable[[dict[str, Any]], None] | None = None,
                 on_finished: Callable[[], None] | None = None,
                 on_save: Callable[[float], None] | None = None, clock: Callable[[], float] | None = None,
                 limits: Callable[[], tuple[float, int] | None] | None = None):
        super().__init__(metric=METRIC, mode="max")
        self.clock, self.limits = clock, limits
        self.strategy, self.space = strategy, space
        self.budget_s, self.max_children = float(budget_s), int(max_children)
        self.on_told, self.on_result, self.on_finished, self.on_save = on_told, on_result, on_finished, on_save
        self.waiting: dict[str, list[int]] = {}  # trial id -> values, until the rung-0 reward is told
        self.keys: dict[str, str] = {}  # trial id -> architecture key, until told
        self.meta: dict[str, dict[str, Any]] = {}  # trial id -> {"child", "key"}, for every trial
        self.rewards: dict[str, float] = {}  # architecture key -> rung-0 reward (NaN: the child failed)
        self.twins: dict[str, list[list[int]]] = {}  # key -> duplicate values proposed while it trains
        self.duplicates = 0
        self.seen: dict[str, list[int]] = {}  # trial id -> rungs whose result was handled
        self.children = 0  # proposed
        self.told = 0
        self.elapsed_before = self.recorded()  # a session before this one may have spent some of the budget
        self.started = time.monotonic()
        self.finished = False

    # -- clock
    def recorded(self) -> float:
        """The search time the driver's record says was spent (0 without one)."""
        clock = getattr(self, "clock", None)  # None in a searcher pickled by an older nasfer
        return float(clock()) if clock is not None else 0.0

    def elapsed(self) -> float:
        return self.elapsed_before + time.monotonic() - self.started

    def out_of_budget(self) -> bool:
        return self.elapsed() >= self.budget_s or (0 < self.max_children <= self.children)

    # -- Tune's interface
    def suggest(self, trial_id: str) -> dict[str, Any] | None:
        for _ in range(MAX_DUPLICATES_PER_SUGGEST):
            if self.out_of_budget() or self.duplicates > 200 * max(1, self.children):
                if not self.finished and self.on_finished is not None:
                    self.on_finished()
                self.finished = True
                return Searcher.FINISHED
            values = self.strategy.ask()
            if values is None:
                return None  # batched REINFORCE: wait for the batch's rewards
            values = [int(v) for v in values]
            key = self.space.key(values)
            if key in self.rewards:  # scored before: the same reward again, no training
                self._duplicate(key, values)
                continue
            if key in self.keys.values():  # its twin is training: told with the twin
                self.twins.setdefault(key, []).append(values)
                return None
            self.waiting[trial_id], self.keys[trial_id] = values, key
            self.meta[trial_id] = {"child": self.children, "key": key}
            self.children += 1
            return {"values": values, "spec": self.space.decode(values), **self.meta[trial_id]}
        return None

    def _duplicate(self, key: str, values: list[int]) -> None:
        stats = self.strategy.tell(values, self.rewards[key])
        self.duplicates += 1
        if self.on_told is not None:
            self.on_told({"kind": "duplicate", "key": key, "values": values, "reward": self.rewards[key],
                          "stats": dict(stats or {}), "elapsed_s": self.elapsed()})

    def on_trial_result(self, trial_id: str, result: dict[str, Any]) -> None:
        self._result(trial_id, result)

    def on_trial_complete(self, trial_id: str, result: dict[str, Any] | None = None,
                          error: bool = False) -> None:
        # A result on which the scheduler stops the trial comes here, not through on_trial_result.
        if result and METRIC in result and not error:
            self._result(trial_id, result)
        if trial_id in self.waiting and self.out_of_budget():  # cut by the budget's end: not counted
            self.waiting.pop(trial_id)
            self.keys.pop(trial_id)
        elif trial_id in self.waiting:  # failed before its rung-0 result: dropped (NaN), not rewarded
            self._tell(trial_id, math.nan, {**(result or {}), "error": True})

    def _result(self, trial_id: str, result: dict[str, Any]) -> None:
        rung = int(result.get(RUNG, 0))
        if rung in self.seen.setdefault(trial_id, []):
            return  # a finished trial's last result comes again with on_trial_complete
        self.seen[trial_id].append(rung)
        if self.on_result is not None:
            self.on_result({**result, "trial_id": trial_id, **self.meta.get(trial_id, {}), "elapsed_s": self.elapsed()})
        if trial_id in self.waiting and rung == 0 and METRIC in result:
            self._tell(trial_id, float(result[METRIC]), result)

    def _tell(self, trial_id: str, reward: float, result: dict[str, Any]) -> None:
        values, key = self.waiting.pop(trial_id), self.keys.pop(trial_id)
        stats = self.strategy.tell(values, reward)
        self.told += 1
        self.rewards[key] = reward
        if self.on_told is not None:
            self.on_told({"kind": "child", "trial_id": trial_id, **self.meta[trial_id], "values": values,
                          "spec": self.space.decode(values), "reward": reward, "result": result,
                          "stats": dict(stats or {}), "told": self.told, "elapsed_s": self.elapsed()})
        for twin in self.twins.pop(key, []):
            self._duplicate(key, twin)

    # -- checkpoints (Tune calls these with its experiment checkpoints)
    def state(self) -> dict[str, Any]:
        return {"strategy": self.strategy.state_dict(), "waiting": dict(self.waiting), "seen": dict(self.seen),
                "keys": dict(self.keys), "meta": dict(self.meta), "rewards": dict(self.rewards),
                "twins": dict(self.twins),
                "duplicates": self.duplicates,
                "children": self.children, "told": self.told, "elapsed_s": self.elapsed(),
                "finished": self.finished}

    def load_state(self, state: dict[str, Any]) -> None:
        self.strategy.load_state_dict(state["strategy"])
        self.waiting = {k: list(v) for k, v in state["waiting"].items()}
        self.seen = {k: list(v) for k, v in state["seen"].items()}
        self.keys, self.meta = dict(state["keys"]), {k: dict(v) for k, v in state["meta"].items()}
        self.rewards = {k: float(v) for k, v in state["rewards"].items()}
        self.twins = {k: [list(v) for v in vs] for k, vs in state["twins"].items()}
        self.duplicates = int(state["duplicates"])
        self.children, self.told = int(state["children"]), int(state["told"])
        self.elapsed_before, self.started = max(float(state["elapsed_s"]), self.recorded()), time.monotonic()
        self.finished = bool(state["finished"])
        limits = getattr(self, "limits", None)
        current = limits() if limits is not None else None
        if current is not None:  # this session's, not those pickled when the search began
            self.budget_s, self.max_children = float(current[0]), int(current[1])

    def save(self, checkpoint_path: str) -> None:
        import torch

        torch.save(self.state(), checkpoint_path)
        if self.on_save is not None:
            self.on_save(self.elapsed())

    def restore(self, checkpoint_path: str) -> None:
        import torch

        self.load_state(torch.load(checkpoint_path, weights_only=False))


__all__ = ["METRIC", "RUNG", "StrategySearcher"]
