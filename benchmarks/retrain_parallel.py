"""Searches or trainings of a retraining campaign side by side (`benchmarks/retrain.py --search-jobs N`,
`--train-jobs N`), each in its own process, and none outliving the campaign.

One spawned process per step (no state shared with the campaign), N at a time. A step that raises,
or whose process dies (the out-of-memory killer, `kill -9`), is reported as failed when its process ends;
the campaign never waits on a dead worker. When the campaign is stopped (Ctrl-C, SIGTERM) the queued
steps are dropped and the running ones terminated at once; on Linux each worker also asks the kernel for
SIGTERM when the campaign process dies, even by `kill -9` (prctl PR_SET_PDEATHSIG), so no orphaned step
keeps writing into a folder that a restarted campaign resumes. Every search and training is resumable, so a terminated
one loses only its unfinished child or epoch.
"""

from __future__ import annotations

import multiprocessing
import signal
import traceback
from multiprocessing.connection import wait
from typing import Any, Callable

PR_SET_PDEATHSIG = 1
#: seconds between run_parallel's check_stop() calls while it waits for its workers
CHECK_EVERY_S = 5.0


class WorkerFailed(RuntimeError):
    """A step's process raised (the message ends with its traceback) or died without a result."""


def die_with_parent() -> None:
    """SIGTERM this process when its parent dies (Linux; elsewhere a no-op)."""
    try:
        import ctypes

        ctypes.CDLL(None, use_errno=True).prctl(PR_SET_PDEATHSIG, signal.SIGTERM)
    except (OSError, AttributeError):
        pass


def _worker(call: tuple, conn) -> None:
    die_with_parent()
    try:
        call[0](*call[1:])
        conn.send(None)
    except BaseException as exc:  # noqa: BLE001  (reported to the campaign, which decides)
        try:
            conn.send(f"{type(exc).__name__}: {exc}\n{traceback.format_exc()}")
        except OSError:  # the campaign stopped first (Ctrl-C or SIGTERM to the process group): nobody to tell
            pass
    finally:
        conn.close()


def run_parallel(steps: list, jobs: int, log: Callable[[str], None] = print,
                 on_done: Callable[[Any], None] = lambda step: None,
                 check_stop: Callable[[], None] = lambda: None) -> list[tuple[Any, Exception]]:
    """Run each step's `parallel` = (module-level function, *arguments) `jobs` at a time in fresh processes;
    return (step, WorkerFailed) for those that raised or died (logged; the others went on). `on_done(step)` is
    called as each one ends (the campaign rewrites its result file and carries the step's folder);
    `check_stop()` every few seconds while they run (it raises to stop them, e.g. for a signal whose own
    exception Python dropped).

    Any BaseException in the caller (KeyboardInterrupt from Ctrl-C or the campaign's SIGTERM handler)
    terminates the running workers before it propagates.
    """
    ctx = multiprocessing.get_context("spawn")
    queue, running, failures = list(steps), {}, []
    try:
        while queue or running:
            while queue and len(running) < jobs:
                step = queue.pop(0)
                receive, send = ctx.Pipe(duplex=False)
                process = ctx.Process(target=_worker, args=(step.parallel, send), daemon=False)
                process.start()
                send.close()
                running[process.sentinel] = (step, process, receive)
            check_stop()
            for sentinel in wait(list(running), timeout=CHECK_EVERY_S):
                step, process, receive = running.pop(sentinel)
                process.join()
                try:
                    error = receive.recv()
                except EOFError:  # no result sent: killed (OOM killer, kill -9) or crashed
                    error = f"its process died without a result (exit code {process.exitcode})"
                receive.close()
                if error is None:
                    log(f"{step.label}: finished")
                else:
                    log(f"{step.label}: failed: {error.splitlines()[0]}")
                    failures.append((step, WorkerFailed(error)))
                on_done(step)
    except BaseException:
        for _, process, _ in running.values():
            process.terminate()
        for _, process, _ in running.values():
            process.join()
        raise
    return failures


__all__ = ["WorkerFailed", "die_with_parent", "run_parallel"]
