"""`nasfer search --backend ray [--address ...]`: the search's children as Ray Tune trials.

The same search as the local backend (`nasfer.nas.search`: space, strategy, fidelities, objective,
result files), executed by Ray Tune (`nasfer.nas.ray_tune`) on this machine or a cluster:

- every child is a Tune trial reserving `--trial-cpus` CPUs (its torch threads) and `--trial-gpus`
  GPUs; it trains the child with `nasfer.nas.fidelity.train_child` at each rung it reaches and
  measures its ONNX Runtime latency, as a local child (train_child has no device argument yet, so a
  trial's GPU is reserved but the child trains on the trial's CPUs);
- the strategy proposes children through `StrategySearcher` (ask/tell; batched REINFORCE waits for
  its batch) and is rewarded with rung-0 objectives only;
- the `--rungs` schedule is Tune's ASHAScheduler (reduction factor `--eta`);
- `<out>/ray_tune` holds Tune's experiment checkpoint: the same command continues an interrupted
  search with `Tuner.restore` (Ctrl+C or SIGTERM stop it cleanly, a killed one loses at most the last
  seconds), with the budget counted over all sessions;
- the driver writes `search_log.jsonl` as results arrive (the local backend's line format, plus the
  trial id) and, at the end, the local backend's result files through `nasfer.nas.results.finish`.

Data are read once by the driver and shipped to the trials through Ray's object store.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import math
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal, Optional

from .. import config
from ..config import option

FINISHED_FILE = "ray_finished.json"
CLOCK_FILE = "ray_clock.json"


@dataclass
class RaySearchConfig:
    """The `nasfer search` flags that choose and configure the Ray backend."""

    backend: Literal["local", "ray"] = option("local", "where children are trained: local (this process, one at a "
                                                        "time) or ray (Ray Tune trials; pip install 'nasfer[distributed]')")
    address: Optional[str] = option(None, "with --backend ray: the Ray cluster to use (auto: the one this machine "
                                          "belongs to; default: start Ray on this machine)")
    trial_cpus: float = option(1.0, "with --backend ray: CPUs each child trial reserves (its torch threads)")
    trial_gpus: float = option(0.0, "with --backend ray: GPUs each child trial reserves (Ray schedules trials onto "
                                    "GPU nodes; the children's trainer, nas.fidelity.train_child, itself runs on the CPU)")
    ray_cpus: int = option(0, "with --backend ray and no --address: CPUs the local Ray may use (0: all)")

    def validate(self) -> "RaySearchConfig":
        """Raise ValueError naming the first impossible setting or a Ray flag given without --backend ray."""
        from ..validation import MAX_THREADS, check, check_only_with, finite

        if self.backend != "ray":
            given = [flag for flag, value in (("--address", self.address), ("--ray-cpus", self.ray_cpus),
                                              ("--trial-gpus", self.trial_gpus)) if value]
            if self.trial_cpus != 1.0:
                given.append("--trial-cpus")
            check_only_with(given, "--backend ray")
        check([(self.trial_cpus > 0, f"--trial-cpus must be > 0, got {self.trial_cpus}"),
               (self.trial_cpus <= MAX_THREADS, f"--trial-cpus must be at most {MAX_THREADS}, got {self.trial_cpus}"),
               (self.trial_gpus >= 0 and finite(self.trial_gpus), f"--trial-gpus must be >= 0, got {self.trial_gpus}"),
               (0 <= self.ray_cpus <= MAX_THREADS, f"--ray-cpus must be 0..{MAX_THREADS} (0: all), got {self.ray_cpus}")])
        return self


def add_arguments(parser: argparse.ArgumentParser) -> None:
    config.add_arguments(parser, RaySearchConfig)


def requested(args: argparse.Namespace) -> bool:
    """True when the command line asks for the Ray backend; ValueError for Ray flags without it."""
    return config.from_args(RaySearchConfig, args).validate().backend == "ray"


# ------------------------------------------------------------------------------------------------
# what a trial runs
# ------------------------------------------------------------------------------------------------
@dataclass
class ChildProblem:
    """Everything a trial needs to score one child at one rung (pickled to the trials once)."""

    cfg: Any  # SearchConfig
    data: Any = None  # nasfer.nas.data.SearchData; None with `evaluate`
    evaluate_fn: Any = None  # (spec, Fidelity) -> accuracy, replacing training (tests)
    latency_fn: Any = None  # (model name, kwargs) -> latency dict, replacing the measurement (tests)
    latency_path: str = ""
    deadline: float = 0.0  # time.time() at which the search's budget ends (0: none)

    @property
    def n_rungs(self) -> int:
        return len(self.cfg.rungs)

    @property
    def eta(self) -> int:
        return int(self.cfg.eta)

    def evaluate(self, spec: dict[str, Any], rung: int, done: list[dict[str, Any]]) -> dict[str, Any] | None:
        """One rung of one child, as the local backend scores it: {"score" (the objective), "accuracy",
        "objective", "seconds", "latency"} (latency measured at rung 0, then carried); a child slower than
        `max_latency_ms` is {"score": 0, ..., "infeasible": True}, untrained; None when the search's
        budget ends before or during the training (the rung is not counted, as in the local backend)."""
        from .fidelity import Fidelity
        from .latency import LatencyCache, mnas_reward
        from .search import make_search_space

        cfg = self.cfg
        space = make_search_space(cfg)
        name, kwargs = space.model(spec)
        latency = done[0]["latency"] if done else None
        max_ms = float(cfg.max_latency_ms)
        if not done and (cfg.latency_target_ms > 0 or max_ms > 0 or self.latency_fn is not None):
            latency = (self.latency_fn(name, kwargs) if self.latency_fn is not None
                       else LatencyCache(self.latency_path or None,
                                         cap=(cfg.latency_batch, max_ms) if max_ms > 0 else None).get(name, kwargs))
        ms = latency.get(f"ms_per_face_b{cfg.latency_batch}") if latency else None
        if max_ms > 0 and ms is not None and ms > max_ms:
            # infeasible, as in the local backend: not trained, reward 0, never promoted
            return {"score": 0.0, "accuracy": 0.0, "objective": 0.0, "seconds": 0.0, "latency": latency,
                    "infeasible": True}
        fidelity = Fidelity.parse(cfg.rungs[rung])
        start = time.monotonic()
        # The budget's end, on this process' monotonic clock (trials may run on other machines).
        deadline = start + (self.deadline - time.time()) if self.deadline else None
        if deadline is not None and start >= deadline:
            return None
        if self.evaluate_fn is not None:
            accuracy = float(self.evaluate_fn(spec, fidelity))
        else:
            from .fidelity import BudgetExceeded

            try:
                accuracy = self._train(name, kwargs, fidelity, deadline)
            except BudgetExceeded:
                return None  # stopped at the budget's end and not counted, as in the local backend
        objective = mnas_reward(accuracy, ms, cfg.latency_target_ms, cfg.latency_w)
        return {"score": objective, "accuracy": accuracy, "objective": objective,
                "seconds": round(time.monotonic() - start, 2), "latency": latency}

    def _train(self, name: str, kwargs: dict[str, Any], fidelity: Any, deadline: float | None) -> float:
        from .fidelity import Recipe, train_child

        recipe = Recipe(lr=self.cfg.child_lr, batch_size=self.cfg.child_batch, precision=self.cfg.precision)
        return float(train_child(name, kwargs, self.data, fidelity, seed=self.cfg.seed, recipe=recipe,
                                 deadline=deadline))


# ------------------------------------------------------------------------------------------------
# what the driver writes
# ------------------------------------------------------------------------------------------------
class SearchFiles:
    """Driver-side callbacks of the searcher: `search_log.jsonl` lines in the local backend's format
    (plus `trial_id`), and the finished marker. Picklable: Tune saves it with the searcher."""

    def __init__(self, out: Path, rungs: tuple[str, ...], cfg: Any = None, budget_s: float = 0.0):
        self.out, self.rungs = Path(out), tuple(rungs)
        # off a terminal (a log file): one line per finished child or promotion, as the local backend prints
        self.cfg, self.budget_s = cfg, float(budget_s)
        self.latency: dict[str, Any] = {}  # architecture key -> its latency (a promotion's line shows it too)

    @property
    def lines(self) -> bool:
        """Whether to print a line per job: asked at each job, since a resumed search's driver calls the
        SearchFiles pickled when the search began (perhaps on a terminal), not one made for this session."""
        cfg = getattr(self, "cfg", None)  # None in a SearchFiles pickled by an older nasfer: no lines
        return bool(cfg is not None and cfg.progress and not (sys.stderr.isatty() and sys.stdout.isatty()))

    def spent(self) -> float:
        """The search time spent so far by the record `clock` keeps (0.0 before the first)."""
        path = self.out / CLOCK_FILE
        return float(json.loads(path.read_text())["elapsed_s"]) if path.is_file() else 0.0

    def limits(self) -> tuple[float, int] | None:
        """This session's --budget-minutes (in seconds) and --max-children, from the config.json the driver writes
        before the search starts or continues (both may change then); None without one."""
        path = self.out / "config.json"
        if not path.is_file():
            return None
        saved = json.loads(path.read_text())
        return float(saved["budget_minutes"]) * 60.0, int(saved["max_children"])

    def clock(self, elapsed_s: float) -> None:
        """Remember the search time spent so far (read back when an interrupted search continues)."""
        (self.out / CLOCK_FILE).write_text(json.dumps({"elapsed_s": max(self.spent(), float(elapsed_s))}) + "\n")

    def _append(self, record: dict[str, Any]) -> None:
        from .search import LOG_FILE

        if "elapsed" in record:
            self.clock(record["elapsed"])
        path = self.out / LOG_FILE
        jobs = sum(1 for _ in open(path)) if path.exists() else 0
        with open(path, "a") as f:
            f.write(json.dumps({**record, "job": jobs + 1}) + "\n")
        if self.lines and record["kind"] != "duplicate":
            self._print({**record, "job": jobs + 1})

    def _print(self, record: dict[str, Any]) -> None:
        from .results import job_line

        if record.get("latency") is not None:
            self.latency[record["key"]] = record["latency"]
        if record.get("error"):  # failed in its trial: no accuracy (Ray's trial error says why)
            record = {**record, "failed": "the trial failed (see Ray's error for it)"}
        budget_s = (self.limits() or (self.budget_s,))[0]  # a resumed search's SearchFiles is the first session's
        print(job_line(record, self.latency.get(record["key"]), self.cfg, self.out.name, budget_s), flush=True)

    def told(self, event: dict[str, Any]) -> None:
        """A log line for what the strategy was told. A failed child (told NaN: dropped) and its duplicates
        are logged with reward 0.0, as the local backend logs them (the line's "dropped" stat and the child's
        "error" say it was not measured), so the log stays strict JSON."""
        stats = {k: float(v) for k, v in event["stats"].items()}
        elapsed = round(event["elapsed_s"], 2)
        reward = 0.0 if math.isnan(event["reward"]) else event["reward"]
        if event["kind"] == "duplicate":
            self._append({"kind": "duplicate", "key": event["key"], "reward": reward, **stats,
                          "elapsed": elapsed})
            return
        result = event["result"]
        info = json.loads(result["info"]) if "info" in result else {}
        self._append({"kind": "child", "rung": 0, "fidelity": self.rungs[0], "child": event["child"],
                      "key": event["key"], "reward": reward,
                      **{k: info.get(k) for k in ("accuracy", "objective", "seconds")},
                      **({"infeasible": True} if info.get("infeasible") else {}),
                      "latency": info.get("latency"), **stats, "spec": event["spec"],
                      "trial_id": event["trial_id"], "error": bool(result.get("error", False)), "elapsed": elapsed})

    def result(self, event: dict[str, Any]) -> None:
        rung = int(event.get("rung", 0))
        if rung == 0 or "info" not in event:
            return  # rung 0 is the child's own line (told)
        info = json.loads(event["info"])
        self._append({"kind": "promotion", "rung": rung, "fidelity": self.rungs[rung], "child": event["child"],
                      "key": event["key"], **{k: info.get(k) for k in ("accuracy", "objective", "seconds")},
                      "trial_id": event["trial_id"], "elapsed": round(event["elapsed_s"], 2)})

    def finished(self) -> None:
        (self.out / FINISHED_FILE).write_text(json.dumps({"finished": True}) + "\n")


def rebuild(run: Any, log_path: Path) -> None:
    """Fill a SearchRun's trials, scheduler and counters from the Ray backend's log, for `finish`."""
    trials: dict[str, dict[str, Any]] = {}
    by_id: dict[int, dict[str, Any]] = {}
    elapsed = 0.0
    for line in log_path.read_text().splitlines():
        record = json.loads(line)
        elapsed = max(elapsed, float(record.get("elapsed", 0.0)))
        if record["kind"] == "duplicate":
            run.duplicates += 1
        elif record["kind"] == "child" and not record.get("error"):
            trial = {"id": int(record["child"]), "key": record["key"], "values": None, "spec": record["spec"],
                     "latency": record["latency"], "scores": {}}
            trials[record["key"]] = by_id[trial["id"]] = trial
            trial["scores"]["0"] = {k: record[k] for k in ("accuracy", "objective", "seconds")}
            if record.get("infeasible"):
                trial["scores"]["0"]["infeasible"] = True
        elif record["kind"] == "promotion" and int(record["child"]) in by_id:
            by_id[int(record["child"])]["scores"][str(record["rung"])] = {
                k: record[k] for k in ("accuracy", "objective", "seconds")}
        run.jobs += 1
    run.trials = trials
    for trial in trials.values():
        for rung, score in trial["scores"].items():
            run.scheduler.report(trial["key"], int(rung), score["objective"])
    run.loop_elapsed = elapsed


# ------------------------------------------------------------------------------------------------
# the command
# ------------------------------------------------------------------------------------------------
def search(cfg: Any, rcfg: RaySearchConfig, *, dataset=None, evaluate=None, latency=None):
    """Run or continue the search of `cfg` on Ray; a `nasfer.nas.results.SearchResult`, or None when the
    run was interrupted (the same call continues it). Ray is started (or joined, `--address`) here."""
    from ..config import to_dict
    from ..errors import DataError, ModelError
    from ..ray_session import ray_session, require_ray
    from .ray_searcher import StrategySearcher
    from .ray_tune import can_restore, run_tune
    from .results import finish
    from .search import LOG_FILE, RESUMABLE_CHANGES, STATE_FILE, SearchRun

    require_ray()
    rcfg.validate()
    out = Path(cfg.out)
    if (out / STATE_FILE).exists():
        raise ModelError(f"{out} holds a search of the local backend; continue it without --backend ray, "
                         "or use a new --out")
    run = SearchRun(cfg, evaluate or _never, dataset=dataset, latency=latency)  # space, strategy, checks
    saved_cfg = out / "config.json"
    if saved_cfg.is_file():
        saved, now = json.loads(saved_cfg.read_text()), to_dict(cfg)
        changed = [k for k in now if k not in RESUMABLE_CHANGES and saved.get(k) != now[k]]
        if changed:
            raise ModelError(f"{out} holds a search with other settings ({', '.join(changed)}); use a new --out")
    if cfg.latency_cache and latency is None and (cfg.latency_target_ms > 0 or cfg.max_latency_ms > 0):
        from .latency import check_cache_location

        check_cache_location(cfg.latency_cache)  # LatencyCacheError now, not from every trial
    data = None
    if evaluate is None:
        if dataset is None and not cfg.data:
            raise DataError("--data is required (a dataset zip, folder or fer2013.csv)")
        from .data import load_search_data

        data = load_search_data(cfg.data, seed=cfg.seed, val_fraction=cfg.val_fraction,
                                split_file=cfg.split_file or None, subset=cfg.subset, dataset=dataset)
        run.notes, run.n_train, run.n_val = run.notes + data.notes, len(data.train_y), len(data.val_y)
    out.mkdir(parents=True, exist_ok=True)
    saved_cfg.write_text(json.dumps(to_dict(cfg), indent=1) + "\n")
    files = SearchFiles(out.resolve(), tuple(cfg.rungs), cfg, run.budget_s)
    spent = files.spent()
    problem = ChildProblem(dataclasses.replace(cfg, threads=max(1, int(rcfg.trial_cpus))), data, evaluate, latency,
                           latency_path=cfg.latency_cache or str(out.resolve() / "latency_cache.json"),
                           # 1 s after the searcher's own budget end, so a trial cut by it is seen as cut
                           deadline=time.time() + max(0.0, run.budget_s - spent) + 1.0)

    def make_searcher():
        return StrategySearcher(run.strategy, run.space, budget_s=run.budget_s, max_children=cfg.max_children,
                                on_told=files.told, on_result=files.result, on_finished=files.finished,
                                on_save=files.clock, clock=files.spent, limits=files.limits)

    from ..runlock import run_lock

    with run_lock(out, "search"), ray_session(rcfg.address, rcfg.ray_cpus):
        if can_restore(out):
            print(f"nasfer search: continuing the Ray search in {out}", file=sys.stderr)
        outcome = run_tune(problem, make_searcher, out, trial_cpus=rcfg.trial_cpus, trial_gpus=rcfg.trial_gpus,
                           finished_marker=out / FINISHED_FILE, verbose=1 if sys.stderr.isatty() else 0)
    if not outcome.finished:
        print(f"nasfer search: interrupted; the same command continues it from {outcome.path}", file=sys.stderr)
        return None
    if not (out / LOG_FILE).exists():
        raise ValueError("the budget ended before the first child was scored: give a larger --budget-minutes")
    rebuild(run, out / LOG_FILE)
    if not run.trials and outcome.errors:
        raise ModelError(f"all {outcome.errors} child trials failed ({outcome.first_error}); "
                         f"Tune's error files are under {outcome.path}")
    if outcome.errors:
        run.notes.append(f"{outcome.errors} child trial(s) failed and were dropped, not rewarded (see {outcome.path})")
    run.notes.append(f"ran on Ray: {outcome.trials} trials, {rcfg.trial_cpus:g} CPU and {rcfg.trial_gpus:g} GPU each")
    return finish(run)


def _never(spec: dict, fidelity: Any) -> float:  # pragma: no cover - the driver never trains
    raise RuntimeError("the Ray backend's driver does not train children")


def search_from_args(cfg: Any, args: argparse.Namespace):
    """`search` with the Ray flags of the command line (`nasfer search --backend ray`); `--precision auto`
    is resolved here, on the driver, so every worker trains its children at the same precision."""
    import dataclasses

    from ..training.precision import resolve_precision

    cfg = dataclasses.replace(cfg, precision=resolve_precision(cfg.precision, "cpu"))
    return search(cfg, config.from_args(RaySearchConfig, args).validate())


__all__ = ["ChildProblem", "RaySearchConfig", "SearchFiles", "add_arguments", "rebuild", "requested", "search",
           "search_from_args"]
