"""Successive halving inside the search: ASHA (Li et al. 2020, "A System for Massively Parallel
Hyperparameter Tuning"; synchronous SH: Jamieson & Talwalkar 2016), over named fidelities.

Rungs are fidelities from cheap to dear (e.g. `150s@24`, `1e@48`, `3e@48`, see `nasfer.nas.fidelity`).
Every new child is scored at rung 0. A child is promoted from rung r to r + 1 when it is among the
top floor(n_r / eta) of the n_r children scored at rung r and was not promoted yet (ASHA's rule: no
waiting for a full bracket, so it runs under a wall-clock budget and on any number of workers). With
eta = 3, about a third of the children reach rung 1 and a ninth rung 2. Scores are compared only
within a rung; the strategy is rewarded from rung 0 alone (one fidelity), so promotions never change
what the controller learns from.

Interface (stable; maps onto Ray Tune's ASHAScheduler with `grace_period` = rung 0's resource and
`reduction_factor` = eta):

    sh = SuccessiveHalving(n_rungs=3, eta=3)
    sh.report(key, rung, score)          # a child's objective at a rung (higher is better)
    sh.promotion()                       # (key, rung + 1) to run next, highest rung first, or None
    sh.scores(rung) / sh.top(rung, k)    # results so far
    sh.state_dict() / sh.load_state_dict(state)
"""

from __future__ import annotations

from typing import Any, Iterator


class SuccessiveHalving:
    """ASHA promotion bookkeeping; no timing, no training. Raises ValueError for n_rungs < 1 or eta < 2."""

    def __init__(self, n_rungs: int, eta: int = 3):
        if n_rungs < 1:
            raise ValueError(f"successive halving needs at least one rung, got {n_rungs}")
        if eta < 2:
            raise ValueError(f"the reduction factor eta must be at least 2, got {eta}")
        self.n_rungs, self.eta = int(n_rungs), int(eta)
        self.rungs: list[dict[str, float]] = [{} for _ in range(self.n_rungs)]
        self.dropped: set[str] = set()  # children whose promotion failed: never promoted again

    def report(self, key: str, rung: int, score: float) -> None:
        if not 0 <= rung < self.n_rungs:
            raise ValueError(f"rung {rung} out of range 0..{self.n_rungs - 1}")
        self.rungs[rung][key] = float(score)

    def scores(self, rung: int) -> dict[str, float]:
        return dict(self.rungs[rung])

    def top(self, rung: int, k: int | None = None) -> list[str]:
        """Keys of rung `rung` by descending score (ties: first reported first)."""
        order = sorted(self.rungs[rung].items(), key=lambda kv: -kv[1])
        return [key for key, _ in order[: k if k is not None else len(order)]]

    def promotion(self) -> tuple[str, int] | None:
        """The next child to score one rung higher (ASHA), trying the highest rung first; None if none."""
        return next(self.promotions(), None)

    def promotions(self) -> Iterator[tuple[str, int]]:
        """Every child due one rung higher now, one per rung, highest target rung first (a caller short of
        time takes the first it can afford)."""
        for rung in range(self.n_rungs - 2, -1, -1):
            quota = len(self.rungs[rung]) // self.eta
            due = next((key for key in self.top(rung, quota)
                        if key not in self.rungs[rung + 1] and key not in self.dropped), None)
            if due is not None:
                yield due, rung + 1

    def drop(self, key: str) -> None:
        """Never promote `key` again (its promotion failed); its slot in the rung's top third stays used."""
        self.dropped.add(key)

    def highest(self, key: str) -> int:
        """The highest rung `key` was scored at (-1 if none)."""
        return max((r for r in range(self.n_rungs) if key in self.rungs[r]), default=-1)

    def state_dict(self) -> dict[str, Any]:
        return {"n_rungs": self.n_rungs, "eta": self.eta, "rungs": [dict(r) for r in self.rungs],
                "dropped": sorted(self.dropped)}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        if state["n_rungs"] != self.n_rungs or state["eta"] != self.eta:
            raise ValueError("saved successive-halving state has other rungs or eta")
        self.rungs = [dict(r) for r in state["rungs"]]
        self.dropped = set(state.get("dropped", []))
