"""The Ray Tune Searcher adapter over the ask/tell strategies (no Ray cluster needed: Tune's Searcher
is driven directly, as Tune's controller drives it)."""

from __future__ import annotations

import ray.tune  # noqa: E402,F401  (the distributed extra, installed by the test command)

from ray.tune.search import Searcher  # noqa: E402

from nasfer.nas.ray_searcher import METRIC, RUNG, StrategySearcher  # noqa: E402


class Space:
    def decode(self, values):
        return {"ops": list(values)}

    def key(self, values):
        return "-".join(str(v % 100) for v in values)  # 1 and 101 are the same architecture


class BatchedToy:
    """Proposes (n,) in order; like batched REINFORCE, waits once `batch` proposals are untold."""

    name = "toy"

    def __init__(self, batch=2):
        self.batch, self.out, self.n, self.told = batch, 0, 0, []

    def ask(self):
        if self.out >= self.batch:
            return None
        self.out += 1
        self.n += 1
        return (self.n,)

    def tell(self, values, reward):
        self.out -= 1
        self.told.append((tuple(values), reward))
        return {"told": float(len(self.told))}

    def state_dict(self):
        return {"out": self.out, "n": self.n, "told": list(self.told)}

    def load_state_dict(self, state):
        self.out, self.n, self.told = state["out"], state["n"], list(state["told"])


class Recorder:
    def __init__(self):
        self.events = []

    def __call__(self, event):
        self.events.append(event)


def test_batched_strategy_waits_and_is_told_the_rung0_reward_once():
    told, results = Recorder(), Recorder()
    searcher = StrategySearcher(BatchedToy(batch=2), Space(), budget_s=3600, on_told=told, on_result=results)
    a, b = searcher.suggest("a"), searcher.suggest("b")
    assert a == {"values": [1], "spec": {"ops": [1]}, "child": 0, "key": "1"} and b["values"] == [2]
    assert searcher.suggest("c") is None  # the batch is out
    searcher.on_trial_result("a", {METRIC: 0.4, RUNG: 0})
    searcher.on_trial_result("a", {METRIC: 0.9, RUNG: 1})  # a promotion's score is not the strategy's
    searcher.on_trial_complete("a", {METRIC: 0.9, RUNG: 1})
    assert searcher.strategy.told == [((1,), 0.4)]
    assert [(e["trial_id"], e[RUNG]) for e in results.events] == [("a", 0), ("a", 1)]  # logged once each
    assert searcher.suggest("c")["values"] == [3]
    searcher.on_trial_complete("b", None, error=True)  # failed before any result: scored 0, not waited for
    assert searcher.strategy.told[-1] == ((2,), 0.0)
    assert [e["reward"] for e in told.events] == [0.4, 0.0] and told.events[1]["result"]["error"]
    # ASHA stopping a trial on its rung-0 result: Tune hands that result to on_trial_complete only
    searcher.on_trial_complete("c", {METRIC: 0.3, RUNG: 0})
    assert searcher.strategy.told[-1] == ((3,), 0.3)


def test_budget_and_child_limit_finish_the_search():
    searcher = StrategySearcher(BatchedToy(batch=10), Space(), budget_s=3600, max_children=2)
    assert searcher.suggest("a") and searcher.suggest("b")
    assert searcher.suggest("c") == Searcher.FINISHED
    spent = StrategySearcher(BatchedToy(), Space(), budget_s=0.0)
    assert spent.suggest("a") == Searcher.FINISHED


def test_save_and_restore_continue_where_it_stopped(tmp_path):
    searcher = StrategySearcher(BatchedToy(batch=3), Space(), budget_s=3600)
    for trial in "abc":
        searcher.suggest(trial)
    searcher.on_trial_result("a", {METRIC: 0.5, RUNG: 0})
    searcher.save(str(tmp_path / "searcher.pt"))

    restored = StrategySearcher(BatchedToy(batch=3), Space(), budget_s=3600)
    restored.restore(str(tmp_path / "searcher.pt"))
    assert restored.waiting == {"b": [2], "c": [3]} and restored.children == 3
    assert restored.strategy.told == [((1,), 0.5)]
    assert restored.suggest("d")["values"] == [4]  # one slot of the batch was freed by the tell
    assert restored.suggest("e") is None
    restored.on_trial_result("b", {METRIC: 0.7, RUNG: 0})
    assert restored.strategy.told[-1] == ((2,), 0.7)
    assert restored.elapsed() >= searcher.elapsed_before


class Proposes:
    """Proposes the given values in order, never waits."""

    def __init__(self, *values):
        self.values, self.told = list(values), []

    def ask(self):
        return (self.values.pop(0),)

    def tell(self, values, reward):
        self.told.append((tuple(values), reward))
        return {}

    def state_dict(self):
        return {}

    def load_state_dict(self, state):
        pass


def test_known_architectures_are_told_their_reward_without_training():
    told = Recorder()
    searcher = StrategySearcher(Proposes(1, 101, 2, 102, 201, 3), Space(), budget_s=3600, on_told=told)
    assert searcher.suggest("a")["values"] == [1]
    assert searcher.suggest("b") is None  # 101 is 1's twin, still training: no second trial
    searcher.on_trial_result("a", {METRIC: 0.5, RUNG: 0})
    assert searcher.strategy.told == [((1,), 0.5), ((101,), 0.5)]  # the twin told with it
    assert searcher.suggest("b")["values"] == [2]
    searcher.on_trial_result("b", {METRIC: 0.6, RUNG: 0})
    assert searcher.suggest("c")["values"] == [3]  # 102 and 201 were scored already: told, skipped
    assert searcher.strategy.told[-2:] == [((102,), 0.6), ((201,), 0.5)]
    assert searcher.duplicates == 3 and searcher.children == 3
    assert [e["kind"] for e in told.events] == ["child", "duplicate", "child", "duplicate", "duplicate"]


def test_batched_reinforce_waits_for_its_whole_batch():
    from nasfer.nas.space import make_space
    from nasfer.nas.strategy import make_strategy

    space = make_space("macro", blocks=2)
    searcher = StrategySearcher(make_strategy("reinforce", space, batch_size=3), space, budget_s=3600)
    configs = [searcher.suggest(t) for t in "abc"]
    assert all(c and c["spec"] == space.decode(c["values"]) for c in configs)
    assert searcher.suggest("d") is None
    searcher.on_trial_result("a", {METRIC: 0.3, RUNG: 0})
    searcher.on_trial_result("b", {METRIC: 0.5, RUNG: 0})
    assert searcher.suggest("d") is None  # two of three told: no update yet, no new child
    assert searcher.strategy.updates == 0
    searcher.on_trial_result("c", {METRIC: 0.4, RUNG: 0})
    assert searcher.strategy.updates == 1 and searcher.suggest("d") is not None


def test_a_trial_cut_by_the_budgets_end_is_not_counted():
    told = Recorder()
    searcher = StrategySearcher(BatchedToy(batch=4), Space(), budget_s=3600, on_told=told)
    searcher.suggest("a")
    searcher.budget_s = 0.0  # the budget ends while "a" trains; its trial ends without a result
    searcher.on_trial_complete("a", None)
    assert searcher.strategy.told == [] and told.events == [] and searcher.waiting == {}
