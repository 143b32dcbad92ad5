"""The Ray Tune run behind `nasfer search --backend ray`: trials, scheduler, checkpoints, restore.

- Each child is one Tune trial (a function trainable) reserving `trial_cpus` CPUs and `trial_gpus`
  GPUs. It trains the child at rung 0 (the cheapest fidelity), reports {reward, rung, fidelity}, and
  goes on to the next rung until the scheduler stops it (a child over --max-latency-ms ends at rung 0);
  after every rung it saves a checkpoint (the scores so far), so a trial restored after an interruption
  resumes at its next rung.
- The multi-fidelity schedule is Tune's ASHAScheduler (asynchronous successive halving, Li et al.
  2020) with `time_attr="fidelity"`, where rung r reports fidelity eta**r: grace_period 1,
  reduction_factor eta, max_t eta**(rungs - 1), so ASHA's milestones fall exactly on the rungs and a
  child goes on past a rung only when its score is in the top 1/eta there.
- The strategy is a `StrategySearcher` (`nasfer.nas.ray_searcher`); its state, the scheduler's and
  every trial's go into Tune's experiment checkpoint under `<out>/ray_tune`, and an existing one is
  continued with `Tuner.restore` (the budget counts the time of every session).
- SIGINT (Ctrl+C) and SIGTERM stop the run gracefully: Tune saves the experiment one last time.

Ray is imported inside the functions; only the Ray backend calls them.
"""

from __future__ import annotations

import json
import math
import os
import tempfile
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Iterator, Protocol

from ..interrupts import sigterm_as_sigint
from .ray_searcher import METRIC, RUNG

EXPERIMENT = "ray_tune"
FIDELITY = "fidelity"
RUNGS_FILE = "rungs.json"


class Problem(Protocol):
    """What a trial needs: how many rungs, and how to score a child at one (runs in the trial)."""

    n_rungs: int
    eta: int

    def evaluate(self, spec: dict[str, Any], rung: int, done: list[dict[str, Any]]) -> dict[str, Any] | None:
        """Train `spec` at fidelity `rung` from scratch; {"score": float (higher is better), ...}, or None
        when the search's budget ended first. `done`: what it returned for the child's lower rungs."""
        ...


@dataclass
class TuneOutcome:
    finished: bool  # the budget was spent and every trial ended; False: interrupted (restorable)
    trials: int
    errors: int
    path: Path
    first_error: str = ""  # the first failed trial's exception, one line


def child_trial(config: dict[str, Any], problem: Problem = None, threads: int = 1) -> None:
    """Tune function trainable: one child, rung after rung, until ASHA stops it or the last rung."""
    import logging
    import warnings

    import torch
    from ray import tune

    torch.set_num_threads(max(1, threads))
    logging.getLogger("ray.train").setLevel(logging.WARNING)  # one "checkpoint created" line per rung
    # Arrays from Ray's object store are read-only; the search only reads them.
    warnings.filterwarnings("ignore", message="The given NumPy array is not writable")
    done: list[dict[str, Any]] = []
    checkpoint = tune.get_checkpoint()
    if checkpoint is not None:
        with checkpoint.as_directory() as folder:
            done = json.loads(Path(folder, RUNGS_FILE).read_text())
    for rung in range(len(done), problem.n_rungs):
        info = problem.evaluate(config["spec"], rung, list(done))
        if info is None:
            return  # the search's budget ended during this rung: the rung is not counted
        done.append(info)
        with tempfile.TemporaryDirectory() as folder:
            Path(folder, RUNGS_FILE).write_text(json.dumps(done))
            tune.report({"info": json.dumps(info), METRIC: float(info["score"]), RUNG: rung,
                         FIDELITY: problem.eta ** rung}, checkpoint=tune.Checkpoint.from_directory(folder))
        if info.get("infeasible"):
            return  # over --max-latency-ms: never promoted, as in the local backend (before: ASHA could let it on)


def asha(problem: Problem):
    from ray.tune.schedulers import ASHAScheduler

    return ASHAScheduler(metric=METRIC, mode="max", time_attr=FIDELITY, grace_period=1,
                         reduction_factor=problem.eta, max_t=problem.eta ** (problem.n_rungs - 1))


@contextmanager
def trials_may_end_without_a_result() -> Iterator[None]:
    """A child cut by the search's budget returns without reporting (its rung is not counted), and Tune
    then refuses the trial's final result for lacking the scheduler's metric (a ValueError that fails the
    whole search). Tune's documented switch, TUNE_DISABLE_STRICT_METRIC_CHECKING, allows that, for the
    driver while the experiment runs; the previous value is restored after."""
    name = "TUNE_DISABLE_STRICT_METRIC_CHECKING"
    previous = os.environ.get(name)
    os.environ[name] = "1"
    try:
        yield
    finally:
        if previous is None:
            os.environ.pop(name, None)
        else:
            os.environ[name] = previous


def experiment_path(out: str | Path) -> Path:
    return Path(out).resolve() / EXPERIMENT


def can_restore(out: str | Path) -> bool:
    from ray import tune

    path = experiment_path(out)
    return path.is_dir() and tune.Tuner.can_restore(str(path))


def run_tune(problem: Problem, make_searcher: Callable[[], Any], out: str | Path, *, trial_cpus: float = 1.0,
             trial_gpus: float = 0.0, finished_marker: Path, verbose: int = 0) -> TuneOutcome:
    """Run (or restore and continue) the search's Tune experiment under `out`; Ray must be initialised.

    make_searcher: builds the StrategySearcher of a new experiment (a restored one brings its own).
    finished_marker: the file the searcher's on_finished callback writes when the budget is spent.
    """
    from ray import tune

    path = experiment_path(out)
    threads = max(1, math.floor(trial_cpus))
    trainable = tune.with_resources(tune.with_parameters(child_trial, problem=problem, threads=threads),
                                    {"cpu": trial_cpus, "gpu": trial_gpus})
    if can_restore(out):
        tuner = tune.Tuner.restore(str(path), trainable, resume_unfinished=True, resume_errored=True)
    else:
        tuner = tune.Tuner(
            trainable,
            tune_config=tune.TuneConfig(search_alg=make_searcher(), scheduler=asha(problem), num_samples=-1,
                                        reuse_actors=True),  # a trial process imports torch once, not per child
            run_config=tune.RunConfig(
                name=EXPERIMENT, storage_path=str(path.parent), verbose=verbose,
                failure_config=tune.FailureConfig(max_failures=1),  # a lost node's trial is retried once
                checkpoint_config=tune.CheckpointConfig(num_to_keep=None)))  # small JSON files
    with sigterm_as_sigint(via_sigint=True), trials_may_end_without_a_result():
        grid = tuner.fit()
    ended = grid.num_terminated + grid.num_errors
    first = next((str(e).strip().splitlines()[-1] for e in grid.errors if str(e).strip()), "")
    return TuneOutcome(finished=finished_marker.is_file() and ended == len(grid), trials=len(grid),
                       errors=grid.num_errors, path=path, first_error=first[:300])


__all__ = ["EXPERIMENT", "FIDELITY", "Problem", "TuneOutcome", "asha", "can_restore", "child_trial",
           "experiment_path", "run_tune"]
