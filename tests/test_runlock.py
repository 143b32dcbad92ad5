"""One writer per run directory: a second search or training on the same --out stops at once."""

import multiprocessing
import os

import pytest

from nasfer.runlock import LOCK_FILE, RunLocked, run_lock


def _hold(folder, ready, release):
    with run_lock(folder, "search"):
        ready.set()
        release.wait(30)


def test_a_second_writer_is_refused_and_the_lock_goes_with_its_process(tmp_path):
    ctx = multiprocessing.get_context("spawn")
    ready, release = ctx.Event(), ctx.Event()
    holder = ctx.Process(target=_hold, args=(tmp_path / "run", ready, release))
    holder.start()
    try:
        assert ready.wait(60)
        with pytest.raises(RunLocked, match=rf"another search is writing here \(pid {holder.pid}\)"):
            with run_lock(tmp_path / "run", "search"):
                pass
    finally:
        holder.kill()  # like kill -9: the kernel drops the lock with the process
        holder.join()
    with run_lock(tmp_path / "run"):  # a resume after the kill is not blocked by the file left behind
        assert (tmp_path / "run" / LOCK_FILE).read_text().strip() == f"{os.getpid()} run"


def test_search_and_train_refuse_an_output_folder_another_process_writes(tmp_path, learnable_folder):
    from fixtures_nas import fake_latency

    from nasfer.config import DataConfig, TrainConfig
    from nasfer.nas.config import SearchConfig
    from nasfer.nas.search import SearchRun
    from nasfer.train import fit

    ctx = multiprocessing.get_context("spawn")
    for name in ("s", "t"):
        ready, release = ctx.Event(), ctx.Event()
        holder = ctx.Process(target=_hold, args=(tmp_path / name, ready, release))
        holder.start()
        try:
            assert ready.wait(60)
            with pytest.raises(RunLocked, match="another search is writing here"):
                if name == "s":
                    SearchRun(SearchConfig(out=str(tmp_path / "s"), max_children=1, progress=False),
                              lambda spec, fidelity: 0.5, latency=fake_latency).run()
                else:
                    fit(TrainConfig(out=str(tmp_path / "t"), epochs=1), DataConfig(data=str(learnable_folder)),
                        progress=False)
        finally:
            release.set()
            holder.join()
    assert not (tmp_path / "s" / "search_log.jsonl").exists() and not (tmp_path / "t" / "last.pt").exists()
