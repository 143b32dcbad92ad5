"""`search(cfg)`: architecture search with successive halving under a wall-clock budget, resumable.

One loop, with the parts plugged in:

- space (`nasfer.nas.space`: `macro` or `nasnet`), a declaration the strategy samples from;
- strategy (`nasfer.nas.strategy`: `reinforce`, `random`, `evolution`), ask/tell;
- scheduler (`nasfer.nas.scheduler.SuccessiveHalving`, ASHA) over fidelities (`nasfer.nas.fidelity`);
- evaluator: `fidelity.train_child` on the validation split `nasfer train` uses (or any `evaluate`
  function passed in, e.g. a toy reward in tests);
- objective: MnasNet's accuracy * (latency / target) ** w, latency of the exported ONNX graph in ONNX
  Runtime, 1 thread (`nasfer.nas.latency`), cached by architecture hash.

Each iteration runs one job: a promotion (ASHA: a child in the top 1/eta of its rung moves one rung
up, highest rungs first) when its estimated time fits in what is left of the budget, else a new child
at rung 0, whose objective is the strategy's reward (one fidelity for the controller). A job is only
started when its estimated duration (the mean of its rung's past trained jobs, or rung 0's scaled by
compute before any; children skipped for latency and failed jobs do not count) fits in the budget, so
the search ends within `--budget-minutes`. Every job is a line of `search_log.jsonl` and is followed by
`search_state.pt` (strategy, scheduler, children, RNGs; read back with `weights_only=True`), so a killed
search resumes after its last finished job; one interrupted with Ctrl-C or SIGTERM (`kill`) also saves
the time spent up to then, so the resumed search does not exceed the budget. Off a terminal, one line per
finished child or promotion is printed on stdout (a bar on a terminal). The result (`nasfer.nas.results`):
the best trained child at the highest rung reached, `best_arch.json`, the Pareto archive (accuracy vs ms
per face) and `summary.json`; with no trained child, a ValueError saying why (summary.json still written).
"""

from __future__ import annotations

import dataclasses
import json
import math
import sys
import time
from pathlib import Path
from typing import Any, Callable

import torch

from ..config import to_dict
from ..errors import DataError, ModelError
from ..interrupts import raise_if_terminated, sigterm_as_sigint
from ..training.precision import resolve_precision
from .config import (STATE_FILE, SearchConfig, check_config, check_local_locations, make_search_space,
                     make_search_strategy, unused_strategy_flags)
from .fidelity import BudgetExceeded, Fidelity, Recipe
from .latency import LatencyCache, mnas_reward
from .results import bar_accuracy, job_line, ranking
from .scheduler import SuccessiveHalving

LOG_FILE = "search_log.jsonl"
STATE_FORMAT = "nasfer-search-state/2"
#: A search stops when this many children or promotions fail one after another.
MAX_FAILURES_IN_A_ROW = 5
#: A search with this many children over --max-latency-ms and none trained yet stops: nothing is that fast.
MAX_INFEASIBLE_BEFORE_ANY_TRAINED = 100
#: Fields that may change when a search is resumed; any other difference is a different search.
RESUMABLE_CHANGES = ("out", "budget_minutes", "max_children", "threads", "progress", "top_k", "latency_cache")
#: (spec, fidelity) -> validation accuracy; replaces training (toy rewards in tests).
Evaluate = Callable[[dict, Fidelity], float]
#: (model name, kwargs) -> {"ms_per_face_b1", "ms_per_face_b64", "params", ...}
Latency = Callable[[str, dict], dict]


class SearchRun:
    """One search in one directory; `run()` resumes from `search_state.pt` when it exists."""

    def __init__(self, cfg: SearchConfig, evaluate: Evaluate | None = None, *, dataset=None,
                 latency: Latency | None = None):
        self.fidelities = check_config(cfg)
        self.auto_precision = cfg.precision == "auto"  # resolved once here; a resumed search keeps its own
        self.cfg = cfg = dataclasses.replace(cfg, precision=resolve_precision(cfg.precision, "cpu"))
        self.out = Path(cfg.out)
        self.budget_s = cfg.budget_minutes * 60.0
        if cfg.threads:
            torch.set_num_threads(cfg.threads)
        self.space = make_search_space(cfg)
        self.strategy = make_search_strategy(cfg, space=self.space)
        self.scheduler = SuccessiveHalving(len(self.fidelities), cfg.eta)
        self.notes: list[str] = unused_strategy_flags(cfg)
        self.n_train = self.n_val = 0
        if evaluate is None:
            if dataset is None and not cfg.data:
                raise DataError("--data is required (a dataset zip, folder or fer2013.csv)")
            from .data import load_search_data
            from .fidelity import train_child

            data = load_search_data(cfg.data, seed=cfg.seed, val_fraction=cfg.val_fraction,
                                    split_file=cfg.split_file or None, subset=cfg.subset, dataset=dataset)
            self.notes, self.n_train, self.n_val = self.notes + data.notes, len(data.train_y), len(data.val_y)
            def evaluate(spec: dict, fidelity: Fidelity) -> float:
                name, kwargs = self.space.model(spec)
                recipe = Recipe(lr=cfg.child_lr, batch_size=cfg.child_batch, precision=self.cfg.precision)
                return train_child(name, kwargs, data, fidelity, seed=cfg.seed, recipe=recipe, deadline=self.deadline())

        self.evaluate = evaluate
        self.latency_fn = latency
        self.latency_cache: LatencyCache | None = None
        # progress, restored on resume
        self.trials: dict[str, dict[str, Any]] = {}
        self.jobs = 0
        self.duplicates = 0
        self.durations: dict[int, list[float]] = {}
        self.elapsed_before = self.loop_elapsed = 0.0
        self.cpu_before, self.cpu_started = 0.0, time.process_time()  # this process' CPU time (all its threads)
        self.loop_cpu: float | None = None
        self.log_lines = 0
        self.started = time.monotonic()
        self.bar = None
        self.lines = False  # one printed line per job (off a terminal)

    # -- time and budget
    def elapsed(self) -> float:
        return self.elapsed_before + (time.monotonic() - self.started)

    def cpu_seconds(self) -> float:
        """CPU seconds the search has used, across resumes (children train in this process)."""
        return self.cpu_before + (time.process_time() - self.cpu_started)

    def deadline(self) -> float:
        """`time.monotonic()` at which the budget ends (a child still training then is stopped and not counted)."""
        return self.started + self.budget_s - self.elapsed_before

    def estimate(self, rung: int) -> float:
        """Expected seconds of a job at `rung`: the mean of its past trained jobs (children skipped for latency
        and failed jobs do not count), else rung 0's scaled by compute, else 0."""
        if self.durations.get(rung):
            return sum(self.durations[rung]) / len(self.durations[rung])
        if rung and self.durations.get(0):
            n = max(1, self.n_train)
            ratio = self.fidelities[rung].cost(n, self.cfg.child_batch) / self.fidelities[0].cost(n, self.cfg.child_batch)
            return self.estimate(0) * ratio
        return 0.0

    def next_job(self) -> tuple[str, int] | None:
        """("promote", rung) / ("new", 0) / None (budget or child limit reached)."""
        left = self.budget_s - self.elapsed()
        if left <= 0:
            return None
        # the highest promotion that fits in the time left (near the end, a lower rung's may fit where a higher
        # one does not: better than a new child, which can no longer become the winner)
        promotion = next((p for p in self.scheduler.promotions() if self.estimate(p[1]) <= left), None)
        if promotion is not None:
            return promotion
        at_limit = self.cfg.max_children > 0 and len(self.trials) >= self.cfg.max_children
        if not at_limit and self.estimate(0) <= left:
            return ("", 0)
        return None

    # -- state
    def _state(self) -> dict[str, Any]:
        return {"format": STATE_FORMAT, "config": to_dict(self.cfg), "trials": self.trials, "jobs": self.jobs,
                "duplicates": self.duplicates, "durations": {str(k): v for k, v in self.durations.items()},
                "elapsed": self.elapsed(), "cpu": self.cpu_seconds(), "log_lines": self.log_lines,
                "strategy": self.strategy.state_dict(), "scheduler": self.scheduler.state_dict(),
                "torch_rng": torch.get_rng_state()}

    def save_state(self) -> None:
        from ..checkpoint import save_checkpoint  # atomic write

        save_checkpoint(self.out / STATE_FILE, self._state())

    def resume(self) -> bool:
        path = self.out / STATE_FILE
        if not path.exists():
            return False
        from ..checkpoint import safe_torch_load  # weights_only=True; ModelError when unreadable

        state = safe_torch_load(path, "search state")
        if not isinstance(state, dict) or state.get("format") != STATE_FORMAT:
            raise ModelError(f"{path}: not a search state of this version; use a new --out")
        saved = state["config"]
        if self.auto_precision and saved.get("precision") in ("bf16", "fp32"):
            self.cfg = dataclasses.replace(self.cfg, precision=saved["precision"])  # its children's recipe
        now = to_dict(self.cfg)
        changed = [k for k in now if k not in RESUMABLE_CHANGES and saved.get(k) != now[k]]
        if changed:
            diffs = ", ".join(f"{k}: {saved.get(k)!r} -> {now[k]!r}" for k in changed)
            raise ModelError(f"{self.out} holds a search with other settings ({diffs}); use a new --out "
                             f"(only {', '.join(RESUMABLE_CHANGES)} may change on resume)")
        self.trials, self.jobs, self.duplicates = dict(state["trials"]), int(state["jobs"]), int(state["duplicates"])
        self.durations = {int(k): list(v) for k, v in state["durations"].items()}
        self.elapsed_before, self.log_lines = float(state["elapsed"]), int(state["log_lines"])
        self.cpu_before, self.cpu_started = float(state.get("cpu", 0.0)), time.process_time()
        self.strategy.load_state_dict(state["strategy"])
        self.scheduler.load_state_dict(state["scheduler"])
        torch.set_rng_state(state["torch_rng"])
        self._truncate_log()
        return True

    def _truncate_log(self) -> None:
        """Drop log lines written after the saved state (the job an interruption lost is redone)."""
        log = self.out / LOG_FILE
        if log.exists():
            lines = log.read_text().splitlines(keepends=True)
            if len(lines) != self.log_lines:
                log.write_text("".join(lines[: self.log_lines]))

    def _log(self, record: dict[str, Any]) -> None:
        with open(self.out / LOG_FILE, "a") as f:
            f.write(json.dumps(record) + "\n")
        self.log_lines += 1

    # -- jobs
    def latency(self, spec: dict) -> dict[str, Any] | None:
        name, kwargs = self.space.model(spec)
        if self.latency_fn is not None:
            return self.latency_fn(name, kwargs)
        if self.latency_cache is None:
            cap = (self.cfg.latency_batch, self.cfg.max_latency_ms) if self.cfg.max_latency_ms > 0 else None
            self.latency_cache = LatencyCache(self.cfg.latency_cache or self.out / "latency_cache.json", cap=cap)
        return self.latency_cache.get(name, kwargs)

    def objective(self, accuracy: float, trial: dict[str, Any]) -> float:
        ms = trial["latency"].get(f"ms_per_face_b{self.cfg.latency_batch}") if trial["latency"] else None
        return mnas_reward(accuracy, ms, self.cfg.latency_target_ms, self.cfg.latency_w)

    def _score(self, trial: dict[str, Any], rung: int) -> dict[str, Any]:
        start = time.monotonic()
        accuracy = float(self.evaluate(trial["spec"], self.fidelities[rung]))
        seconds = time.monotonic() - start
        result = {"accuracy": accuracy, "objective": self.objective(accuracy, trial), "seconds": round(seconds, 2)}
        trial["scores"][str(rung)] = result
        self.scheduler.report(trial["key"], rung, result["objective"])
        return result

    def new_child(self) -> dict[str, Any]:
        start = time.monotonic()
        values = self.strategy.ask()
        if values is None:  # cannot happen sequentially (every child is told before the next ask)
            raise RuntimeError(f"strategy {self.cfg.strategy} is waiting for rewards that were all told")
        key = self.space.key(values)
        if key in self.trials:  # seen before: the same reward again, no training (common random numbers)
            trial = self.trials[key]
            failed = trial["scores"]["0"].get("failed")
            stats = self.strategy.tell(values, math.nan if failed else trial["scores"]["0"]["objective"])
            self.duplicates += 1
            return {"kind": "duplicate", "key": key, "child": trial["id"], "reward": trial["scores"]["0"]["objective"],
                    **_floats(stats)}
        spec = self.space.decode(values)
        trial = {"id": len(self.trials), "key": key, "values": list(values), "spec": spec, "scores": {}}
        trial["latency"] = None
        try:
            measure = self.cfg.latency_target_ms > 0 or self.cfg.max_latency_ms > 0 or self.latency_fn
            trial["latency"] = self.latency(spec) if measure else None
            ms = (trial["latency"] or {}).get(f"ms_per_face_b{self.cfg.latency_batch}")
            if self.cfg.max_latency_ms > 0 and ms is not None and ms > self.cfg.max_latency_ms:
                # infeasible: not trained, reward 0, never promoted (a hard constraint next to MnasNet's soft one)
                result = {"accuracy": 0.0, "objective": 0.0, "seconds": 0.0, "infeasible": True}
                trial["scores"]["0"] = result
            else:
                result = self._score(trial, 0)
        except BudgetExceeded:
            raise
        except Exception as exc:  # one child's failure (export, training) is that child's: the search goes on
            result = {"accuracy": 0.0, "objective": 0.0, "seconds": round(time.monotonic() - start, 2),
                      "failed": f"{type(exc).__name__}: {exc}"}
            trial["scores"]["0"] = result  # kept, so the child is not tried again; never promoted or ranked
        self.trials[key] = trial
        stats = self.strategy.tell(values, math.nan if "failed" in result else result["objective"])
        if not result.get("infeasible") and not result.get("failed"):
            # only trained children time a job: a child skipped for latency (~1 s) would pull the estimate down
            self.durations.setdefault(0, []).append(time.monotonic() - start)
        return {"kind": "child", "rung": 0, "fidelity": self.fidelities[0].name, "child": trial["id"], "key": key,
                "reward": result["objective"], **result, "latency": trial["latency"], **_floats(stats), "spec": spec}

    def promote(self, key: str, rung: int) -> dict[str, Any]:
        start = time.monotonic()
        trial = self.trials[key]
        try:
            result = self._score(trial, rung)
        except BudgetExceeded:
            raise
        except Exception as exc:  # the child keeps its lower rungs' scores and is not promoted again
            result = {"failed": f"{type(exc).__name__}: {exc}"}
            trial.setdefault("failed", {})[str(rung)] = result["failed"]
            self.scheduler.drop(key)
        if "failed" not in result:
            self.durations.setdefault(rung, []).append(time.monotonic() - start)
        return {"kind": "promotion", "rung": rung, "fidelity": self.fidelities[rung].name, "child": trial["id"],
                "key": key, **result}

    # -- the whole search
    def run(self):
        """Search (or resume) under the output folder's lock (`nasfer.runlock`); the SearchResult."""
        from ..runlock import run_lock

        check_local_locations(self.cfg)  # again: the folder may have changed since search() checked it
        with run_lock(self.out, "search"):
            return self._run()

    def _run(self):
        from tqdm import tqdm

        from .results import finish

        resumed = self.resume()
        (self.out / "config.json").write_text(json.dumps(to_dict(self.cfg), indent=1) + "\n")
        self.started = time.monotonic()
        if not resumed:
            self.save_state()  # the state an interruption during the first job goes back to (with the time spent)
        show = self.cfg.progress and sys.stderr.isatty()
        # off a terminal (a nohup log): one line per finished child or promotion on stdout, as nasfer train's epochs
        self.lines = self.cfg.progress and not (show and sys.stdout.isatty())
        self.bar = tqdm(total=int(self.budget_s), initial=min(int(self.elapsed_before), int(self.budget_s)),
                        unit="s", disable=not show, mininterval=1.0,
                        desc=f"search ({self.cfg.space}, {self.cfg.strategy})" + (" resumed" if resumed else ""),
                        bar_format="{desc}: {percentage:3.0f}%|{bar}| {n}/{total}s{postfix}")  # tqdm puts ", " first
        try:
            with sigterm_as_sigint():  # `kill`, `timeout`, schedulers: saved like Ctrl-C (before: the child's time was lost)
                self._announce_and_loop(resumed)
        except KeyboardInterrupt:
            self._save_interrupted()
            raise
        finally:
            self.bar.close()
        if self.trials:
            self.save_state()
        self.loop_elapsed = self.elapsed()  # the search itself, before the result files are drawn
        self.loop_cpu = self.cpu_seconds()
        return finish(self)

    def _announce_and_loop(self, resumed: bool) -> None:
        if self.lines:
            print(f"search ({self.cfg.space}, {self.cfg.strategy}) in {self.out}: budget "
                  f"{self.budget_s / 60:.1f} min" + (f", resumed at {self.elapsed_before / 60:.1f} min with "
                                                     f"{len(self.trials)} children" if resumed else ""), flush=True)
        for note in self.notes:
            self._say(f"data: {note}")
        self._loop()

    def _loop(self) -> None:
        failing = 0
        while (job := self.next_job()) is not None:
            raise_if_terminated()  # a SIGTERM whose exception Python dropped still stops the search here
            key, rung = job
            try:
                record = self.promote(key, rung) if key else self.new_child()
            except BudgetExceeded:  # back to the state after the last finished job, with the budget spent
                spent, cpu = self.elapsed(), self.cpu_seconds()
                self.resume()
                self.elapsed_before, self.started = spent, time.monotonic()
                self.cpu_before, self.cpu_started = cpu, time.process_time()
                self.notes.append(f"the budget ended while a child was training at rung {rung}: it is not "
                                  f"counted (a resume with a larger --budget-minutes redoes it)")
                break
            self.jobs += 1
            record.update(job=self.jobs, elapsed=round(self.elapsed(), 2))
            self._log(record)
            self.save_state()
            self._report(record)
            if record.get("failed"):
                failing += 1
            elif record["kind"] != "duplicate":  # a duplicate proposal trains nothing: the run goes on
                failing = 0
            if failing >= MAX_FAILURES_IN_A_ROW:  # not one child's problem: the data, the disk, the code
                raise ModelError(f"{failing} children in a row failed, the last with {record['failed']}; fix the "
                                 f"cause and run the same command to continue ({self.out / LOG_FILE} lists them)")
            if record.get("infeasible") and not ranking(self):  # none trained yet
                infeasible = sum(1 for t in self.trials.values() if t["scores"].get("0", {}).get("infeasible"))
                if infeasible >= MAX_INFEASIBLE_BEFORE_ANY_TRAINED:  # before: the whole budget went to timing them
                    self.notes.append(f"stopped early: {infeasible} children, and none trained yet, were slower "
                                      f"than --max-latency-ms {self.cfg.max_latency_ms:g}")
                    break
            if record["kind"] == "duplicate" and self.duplicates > 200 * max(1, len(self.trials)):
                self.notes.append("stopped early: the strategy only proposes children it has already scored")
                break
            delta = min(int(self.elapsed()), int(self.budget_s)) - self.bar.n
            self.bar.set_postfix(children=len(self.trials), rung=record.get("rung", 0),
                                 acc=bar_accuracy(record), refresh=False)
            if delta > 0:
                self.bar.update(delta)

    def _save_interrupted(self) -> None:
        """On Ctrl-C: the state after the last finished job, with the time and CPU spent up to now (the
        unfinished job is redone on resume, but its time counts against --budget-minutes)."""
        spent, cpu = self.elapsed(), self.cpu_seconds()
        if not self.resume():  # interrupted before the first state was written: nothing to keep
            return
        self.elapsed_before, self.started = spent, time.monotonic()
        self.cpu_before, self.cpu_started = cpu, time.process_time()
        self.save_state()

    # -- what is printed
    def _say(self, text: str) -> None:
        """`text` above the progress bar on a terminal, and/or as a line on stdout off one."""
        if self.bar is not None and not self.bar.disable:
            self.bar.write(text)
        if self.lines:
            print(text, flush=True)

    def _report(self, record: dict[str, Any]) -> None:
        """One line per finished child or promotion when lines are printed (not for duplicates)."""
        if self.lines and record["kind"] != "duplicate":
            print(job_line(record, self.trials[record["key"]]["latency"], self.cfg, self.out.name, self.budget_s),
                  flush=True)


def _floats(stats: dict[str, Any]) -> dict[str, float]:
    return {k: float(v) for k, v in stats.items()}


def search(cfg: SearchConfig, evaluate: Evaluate | None = None, *, dataset=None, latency: Latency | None = None):
    """Run (or resume) the search described by `cfg` in `cfg.out`; a `nasfer.nas.results.SearchResult`.

    `evaluate(spec, fidelity) -> accuracy` replaces training (no data is read); `latency(name, kwargs)`
    replaces the ONNX Runtime measurement; `dataset` passes an in-memory `FaceDataset` instead of `cfg.data`.
    """
    check_local_locations(cfg)  # before SearchRun reads the dataset: a refusal costs nothing (the Ray backend
    # builds a SearchRun too, for its space and strategy, on a folder this check refuses)
    return SearchRun(cfg, evaluate, dataset=dataset, latency=latency).run()
