"""Searches of a retraining campaign side by side (`benchmarks/retrain.py --search-jobs N`), each in its own
process, and none outliving the campaign.

A `multiprocessing` pool (spawn: no state shared with the campaign) runs the steps' `parallel` calls N at a
time. When the campaign is stopped (Ctrl-C, SIGTERM) the queued searches are dropped and the running ones
terminated at once, instead of the pool waiting for every queued search (hours); on Linux each worker also
asks the kernel for SIGTERM when the campaign process dies, even by `kill -9` (prctl PR_SET_PDEATHSIG), so
no orphaned search keeps writing into a folder that a restarted campaign resumes. Every search is
resumable, so a terminated one loses only its unfinished child.
"""

from __future__ import annotations

import multiprocessing
import signal
from typing import Any, Callable

PR_SET_PDEATHSIG = 1


def die_with_parent() -> None:
    """Pool initializer: SIGTERM this worker when its parent dies (Linux; elsewhere a no-op)."""
    try:
        import ctypes

        ctypes.CDLL(None, use_errno=True).prctl(PR_SET_PDEATHSIG, signal.SIGTERM)
    except (OSError, AttributeError):
        pass


def run_parallel(steps: list, jobs: int, log: Callable[[str], None] = print) -> list[tuple[Any, Exception]]:
    """Run each step's `parallel` = (module-level function, argument) `jobs` at a time in fresh processes;
    return the (step, exception) of those that failed (logged; the others went on).

    Any BaseException in the caller (KeyboardInterrupt from Ctrl-C or the campaign's SIGTERM handler)
    terminates the workers before it propagates.
    """
    pool = multiprocessing.get_context("spawn").Pool(jobs, initializer=die_with_parent)
    try:
        pending = [(step, pool.apply_async(step.parallel[0], step.parallel[1:])) for step in steps]
        errors = []
        for step, result in pending:
            try:
                result.get()
                log(f"{step.label}: finished")
            except Exception as exc:  # noqa: BLE001  (returned: the campaign skips that job's later steps)
                log(f"{step.label}: failed: {type(exc).__name__}: {exc}")
                errors.append((step, exc))
        pool.close()
    except BaseException:
        pool.terminate()
        raise
    finally:
        pool.join()
    return errors


__all__ = ["die_with_parent", "run_parallel"]
