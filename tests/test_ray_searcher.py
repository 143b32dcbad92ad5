"""The Ray Tune Searcher adapter over the ask/tell strategies (no Ray cluster needed: Tune's Searcher
is driven directly, as Tune's controller drives it)."""

from __future__ import annotations

import json
import math

import pytest
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
    searcher.on_trial_complete("b", None, error=True)  # failed before any result: dropped (NaN), not waited for
    assert searcher.strategy.told[-1][0] == (2,) and math.isnan(searcher.strategy.told[-1][1])
    rewards = [e["reward"] for e in told.events]
    assert rewards[0] == 0.4 and math.isnan(rewards[1]) and told.events[1]["result"]["error"]
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


def test_a_restored_searcher_counts_the_time_the_drivers_clock_recorded(tmp_path):
    """Before: a resumed Ray search's searcher took its time spent from its last Tune checkpoint, which lags
    ray_clock.json (written at every log line), while the trials' deadline came from the clock; so the
    searcher thought budget was left when the trials' deadline cut them, and logged those children as errors
    (told NaN) instead of not counting them. `Tuner.restore` brings back the searcher pickled when the search
    began (tuner.pkl), not one the resumed driver makes, so the clock is read at restore: a first fix that
    gave the searcher the clock's value when it was made still counted from the checkpoint."""
    import pickle

    from nasfer.nas.ray_backend import SearchFiles

    files = SearchFiles(tmp_path, ("3s@16",))
    told = Recorder()
    began = StrategySearcher(BatchedToy(batch=4), Space(), budget_s=100.0, on_told=told, on_save=files.clock,
                             clock=files.spent)  # as the driver makes it at a new search: nothing spent yet
    assert began.elapsed() < 1.0
    pickled = pickle.dumps(began)  # what tuner.pkl keeps, and Tuner.restore brings back
    began.suggest("a")
    began.elapsed_before = 97.0
    began.save(str(tmp_path / "searcher.pt"))  # the last Tune checkpoint: 97 s spent
    files.clock(100.0)  # a log line after it
    restored = pickle.loads(pickled)
    restored.restore(str(tmp_path / "searcher.pt"))
    assert restored.elapsed() >= 100.0 and restored.out_of_budget()
    restored.on_trial_complete("a", None)  # cut by the deadline the clock implies: not counted, not an error
    assert restored.strategy.told == [] and restored.on_told.events == [] and restored.waiting == {}
    (tmp_path / "ray_clock.json").write_text(json.dumps({"elapsed_s": 50.0}))
    earlier = pickle.loads(pickled)
    earlier.restore(str(tmp_path / "searcher.pt"))
    assert 97.0 <= earlier.elapsed() < 100.0  # a clock behind the checkpoint changes nothing
    # a new experiment (nothing for Tune to restore) in a folder whose clock already counts: the trials'
    # deadline is the clock's, and so is the searcher's
    assert 50.0 <= StrategySearcher(BatchedToy(), Space(), budget_s=100.0, clock=files.spent).elapsed() < 51.0


def test_a_restored_searcher_takes_this_sessions_budget_and_max_children(tmp_path):
    """--budget-minutes and --max-children may change when a search continues (RESUMABLE_CHANGES), and the
    trials' deadline follows the new budget; before, the searcher Tuner.restore brought back (pickled when the
    search began) kept the first session's: a larger budget was ignored (no child after the old one), a
    smaller one let children start that the trials' deadline then cut. The driver writes config.json first."""
    import pickle

    from nasfer.nas.ray_backend import SearchFiles

    files = SearchFiles(tmp_path, ("3s@16",))
    began = StrategySearcher(BatchedToy(batch=4), Space(), budget_s=100.0, max_children=2, on_save=files.clock,
                             clock=files.spent, limits=files.limits)
    pickled = pickle.dumps(began)
    began.suggest("a")
    began.elapsed_before = 97.0
    began.save(str(tmp_path / "searcher.pt"))
    (tmp_path / "config.json").write_text(json.dumps({"budget_minutes": 3.0, "max_children": 5}))  # resumed with more
    longer = pickle.loads(pickled)
    longer.restore(str(tmp_path / "searcher.pt"))
    assert (longer.budget_s, longer.max_children) == (180.0, 5) and not longer.out_of_budget()
    assert longer.suggest("b")["values"] == [2]
    (tmp_path / "config.json").write_text(json.dumps({"budget_minutes": 1.0, "max_children": 0}))  # with less
    shorter = pickle.loads(pickled)
    shorter.restore(str(tmp_path / "searcher.pt"))
    assert shorter.budget_s == 60.0 and shorter.out_of_budget() and shorter.suggest("b") is Searcher.FINISHED


def test_a_failed_child_is_dropped_not_rewarded_and_so_are_its_duplicates(tmp_path):
    """The strategy contract (and the local backend): a failed child is told NaN ("dropped"), never a
    measured 0.0; a twin waiting on it and a later duplicate of it are told NaN too, not trained again."""
    told = Recorder()
    searcher = StrategySearcher(Proposes(1, 101, 2, 201, 3), Space(), budget_s=3600, on_told=told)
    assert searcher.suggest("a")["values"] == [1]
    assert searcher.suggest("b") is None  # 101: 1's twin, waits for it
    searcher.on_trial_complete("a", None, error=True)
    assert searcher.suggest("b")["values"] == [2]  # 201 below is 1's architecture: told at once, skipped
    searcher.on_trial_result("b", {METRIC: 0.6, RUNG: 0})
    assert searcher.suggest("c")["values"] == [3]
    rewards = dict(searcher.strategy.told)
    assert math.isnan(rewards[(1,)]) and math.isnan(rewards[(101,)]) and math.isnan(rewards[(201,)])
    assert rewards[(2,)] == 0.6 and 0.0 not in rewards.values()
    assert [e["kind"] for e in told.events] == ["child", "duplicate", "child", "duplicate"]
    assert searcher.children == 3 and searcher.duplicates == 2  # the failed architecture was not tried again

    searcher.save(str(tmp_path / "searcher.pt"))  # and it stays dropped after a restore
    restored = StrategySearcher(Proposes(101, 4), Space(), budget_s=3600)
    restored.restore(str(tmp_path / "searcher.pt"))
    assert restored.suggest("d")["values"] == [4]
    assert math.isnan(restored.strategy.told[0][1])


def test_a_failed_child_is_dropped_by_the_real_strategies():
    from nasfer.nas.space import make_space
    from nasfer.nas.strategy import make_strategy

    space = make_space("macro", blocks=2)
    searcher = StrategySearcher(make_strategy("reinforce", space, batch_size=2), space, budget_s=3600)
    a, b = searcher.suggest("a"), searcher.suggest("b")
    assert a and b and searcher.suggest("c") is None
    searcher.on_trial_complete("a", None, error=True)  # dropped: the batch does not wait for it
    assert searcher.strategy.pending == [] and searcher.suggest("c") is not None
    searcher.on_trial_result("b", {METRIC: 0.5, RUNG: 0})
    assert [r for _, r in searcher.strategy.pending] == [0.5]  # only the measured reward enters the batch

    evolution = StrategySearcher(make_strategy("evolution", space, population=4, sample_size=2), space, budget_s=3600)
    evolution.suggest("a")
    evolution.on_trial_complete("a", None, error=True)
    assert len(evolution.strategy.population) == 0


def test_the_log_line_of_a_failed_child_is_strict_json(tmp_path):
    from nasfer.nas.ray_backend import SearchFiles
    from nasfer.nas.search import LOG_FILE

    files = SearchFiles(tmp_path, ("3s@16",))
    searcher = StrategySearcher(Proposes(1, 101, 2), Space(), budget_s=3600, on_told=files.told)
    searcher.suggest("a")
    searcher.on_trial_complete("a", None, error=True)
    searcher.suggest("b")
    text = (tmp_path / LOG_FILE).read_text()
    lines = [json.loads(line, parse_constant=lambda c: pytest.fail(f"{c} in the log")) for line in text.splitlines()]
    assert [(r["kind"], r["reward"]) for r in lines] == [("child", 0.0), ("duplicate", 0.0)]  # as the local log
    assert lines[0]["error"] is True


def test_the_driver_prints_a_line_per_child_and_promotion_off_a_terminal(tmp_path, capsys):
    """Before: `nasfer search --backend ray > log` printed no line per child (only Ray's banner), though the
    README says a search prints one per finished child or promotion off a terminal, as the local backend does."""
    from nasfer.nas.config import SearchConfig
    from nasfer.nas.ray_backend import SearchFiles

    cfg = SearchConfig(out=str(tmp_path), rungs=("3s@16", "6s@16"), max_latency_ms=1.0)
    files = SearchFiles(tmp_path, cfg.rungs, cfg, budget_s=600.0)  # pytest's stdout is no terminal
    searcher = StrategySearcher(Proposes(1, 2, 3, 101, 4), Space(), budget_s=600, on_told=files.told,
                                on_result=files.result)
    fast = json.dumps({"accuracy": 0.42, "objective": 0.42, "seconds": 3.0,
                       "latency": {f"ms_per_face_b{cfg.latency_batch}": 0.5}})
    slow = json.dumps({"accuracy": 0.0, "objective": 0.0, "seconds": 0.0, "infeasible": True,
                       "latency": {f"ms_per_face_b{cfg.latency_batch}": 2.5}})
    for trial, info in (("a", fast), ("b", slow)):
        searcher.suggest(trial)
        searcher.on_trial_result(trial, {METRIC: json.loads(info)["objective"], RUNG: 0, "info": info})
    searcher.on_trial_result("a", {METRIC: 0.5, RUNG: 1, "info": json.dumps({"accuracy": 0.5, "objective": 0.5,
                                                                             "seconds": 6.0})})
    searcher.suggest("c")
    searcher.on_trial_complete("c", None, error=True)
    assert searcher.suggest("d")["values"] == [4]  # 101 before it: 1's twin, a duplicate, logged, not printed
    out = capsys.readouterr().out.splitlines()
    name = tmp_path.name
    assert len(out) == 4, out
    assert out[0].startswith(f"{name} job 1: child 0 at 3s@16: accuracy 0.4200, 0.500 ms/face")
    assert out[1].startswith(f"{name} job 2: child 1: 2.500 ms/face (batch {cfg.latency_batch}) > --max-latency-ms 1: not trained")
    assert out[2].startswith(f"{name} job 3: child 0 promoted at 6s@16: accuracy 0.5000, 0.500 ms/face")
    assert out[3].startswith(f"{name} job 4: child 2 at 3s@16: failed: the trial failed")
    assert all(line.endswith("/10.0 min") for line in out)
    quiet = SearchFiles(tmp_path / "q", cfg.rungs, SearchConfig(out=str(tmp_path / "q"), progress=False), 600.0)
    assert not quiet.lines
