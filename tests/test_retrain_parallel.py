"""benchmarks/retrain_parallel.py: searches side by side in their own processes, none outliving the campaign."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))

import retrain  # noqa: E402


class _Stop(BaseException):
    """What the campaign's SIGTERM handler raises (KeyboardInterrupt), without touching pytest's SIGINT."""


def _start_and_sleep(folder: str, name: str) -> None:  # runs in a spawned worker
    import time

    (Path(folder) / name).touch()
    time.sleep(60)


def test_stopping_the_campaign_terminates_its_searches_and_drops_the_queued_ones(tmp_path):
    """Before: the pool waited for every queued search when the campaign was stopped (hours), and workers
    outlived a killed campaign, so a restart wrote into the same search folders beside them."""
    import multiprocessing
    import os
    import signal
    import threading
    import types

    from retrain_parallel import run_parallel

    steps = [types.SimpleNamespace(label=f"search {i}", parallel=(_start_and_sleep, str(tmp_path), f"s{i}"))
             for i in range(4)]

    def stop_once_two_run():
        while len(list(tmp_path.iterdir())) < 2:
            threading.Event().wait(0.05)
        os.kill(os.getpid(), signal.SIGUSR1)

    def raise_stop(signum, frame):
        raise _Stop()

    previous = signal.signal(signal.SIGUSR1, raise_stop)
    watcher = threading.Thread(target=stop_once_two_run, daemon=True)
    watcher.start()
    try:
        with pytest.raises(_Stop):
            run_parallel(steps, 2, log=lambda message: None)
    finally:
        signal.signal(signal.SIGUSR1, previous)
    watcher.join()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["s0", "s1"]  # the queued two never started
    assert not multiprocessing.active_children()  # the running two were terminated


def test_a_stop_asked_by_check_stop_terminates_the_running_workers(tmp_path, monkeypatch):
    """A signal whose exception Python dropped (retrain._check_stop) stops the pool within a few seconds
    (before: run_parallel waited on its workers with no timeout, so such a stop waited for them, for hours)."""
    import multiprocessing
    import time
    import types

    import retrain_parallel

    monkeypatch.setattr(retrain_parallel, "CHECK_EVERY_S", 0.05)
    steps = [types.SimpleNamespace(label=f"training {i}", parallel=(_start_and_sleep, str(tmp_path), f"t{i}"))
             for i in range(3)]

    def check_stop():
        if len(list(tmp_path.iterdir())) >= 2:
            raise _Stop()

    began = time.monotonic()
    with pytest.raises(_Stop):
        retrain_parallel.run_parallel(steps, 2, log=lambda message: None, check_stop=check_stop)
    assert time.monotonic() - began < 30  # the workers sleep 60 s
    assert sorted(p.name for p in tmp_path.iterdir()) == ["t0", "t1"]
    assert not multiprocessing.active_children()


def _kill_self(_: str) -> None:  # runs in a spawned worker: what the out-of-memory killer does
    import os
    import signal

    os.kill(os.getpid(), signal.SIGKILL)


def _raise(message: str) -> None:
    raise ValueError(message)


def test_a_search_whose_process_dies_or_raises_is_reported_and_the_others_finish(tmp_path):
    """Before (multiprocessing.Pool): a worker killed by the OOM killer left its result waiting forever."""
    import types

    from retrain_parallel import WorkerFailed, run_parallel

    steps = [types.SimpleNamespace(label="killed", parallel=(_kill_self, "x")),
             types.SimpleNamespace(label="raises", parallel=(_raise, "bad option")),
             types.SimpleNamespace(label="fine", parallel=(Path.touch, tmp_path / "done"))]
    logged, ended = [], []
    failures = {step.label: exc for step, exc in run_parallel(steps, 2, log=logged.append,
                                                               on_done=lambda step: ended.append(step.label))}
    assert len(ended) == 3  # the campaign's result file is rewritten as each search ends
    assert set(failures) == {"killed", "raises"} and all(isinstance(e, WorkerFailed) for e in failures.values())
    assert "died without a result (exit code -9)" in str(failures["killed"])
    assert str(failures["raises"]).startswith("ValueError: bad option") and "Traceback" in str(failures["raises"])
    assert (tmp_path / "done").exists() and "fine: finished" in logged


def test_a_worker_dies_with_the_campaign(tmp_path):
    """prctl(PR_SET_PDEATHSIG): a search worker gets SIGTERM when the campaign process is killed (-9)."""
    import os
    import subprocess
    import sys
    import time

    script = tmp_path / "campaign.py"
    script.write_text(f"""
import multiprocessing, os, sys, time
sys.path.insert(0, {str(Path(retrain.__file__).parent)!r})
from retrain_parallel import die_with_parent

def work(path):
    open(path, "w").write(str(os.getpid()))
    time.sleep(120)

if __name__ == "__main__":
    pool = multiprocessing.get_context("spawn").Pool(1, initializer=die_with_parent)
    pool.apply_async(work, ({str(tmp_path / 'worker.pid')!r},))
    time.sleep(120)
""")
    parent = subprocess.Popen([sys.executable, str(script)])
    pid_file = tmp_path / "worker.pid"
    for _ in range(600):
        if pid_file.is_file() and pid_file.read_text():
            break
        time.sleep(0.1)
    worker = int(pid_file.read_text())
    parent.kill()
    parent.wait()
    for _ in range(100):  # the kernel delivers the signal as the parent exits
        try:
            os.kill(worker, 0)
        except ProcessLookupError:
            break
        time.sleep(0.1)
    else:
        os.kill(worker, 9)
        pytest.fail("the worker outlived its killed parent")


def test_a_worker_whose_campaign_stopped_first_ends_without_a_traceback():
    """Found in review: SIGTERM to the process group (`timeout -s TERM`, Ctrl-C) stopped the campaign before
    its workers, whose report then hit a closed pipe: a BrokenPipeError traceback from every worker."""
    import multiprocessing

    from retrain_parallel import _worker

    receive, send = multiprocessing.Pipe(duplex=False)
    receive.close()
    _worker((_raise, "stopped"), send)  # before: BrokenPipeError
