"""`nasfer search` after a review: flags that crashed (an infinite budget, an --out that is a file), the printed
retraining command of a nasnet search, the budget estimate, a search with no trained child, Ctrl-C and resume,
progress lines off a terminal, and a few messages. Toy rewards: no child is trained."""

import json
import re
import shlex
import time

import pytest
from fixtures_nas import fake_latency

import nasfer.nas.search as search_module
from nasfer.cli import build_parser, main
from nasfer.nas.config import SearchConfig
from nasfer.nas.search import LOG_FILE, STATE_FILE, SearchRun, check_config, search

TOY = dict(strategy="random", budget_minutes=5, blocks=2, rungs=("10s@24",), latency_target_ms=0.0,
           max_latency_ms=0.0, progress=False)


def _toy(spec, fidelity):
    """A deterministic accuracy from the spec (no training)."""
    return (len(json.dumps(spec, sort_keys=True)) % 97) / 100


def _lines(out):
    return [json.loads(line) for line in (out / LOG_FILE).read_text().splitlines()]


def _cli_with_toy(monkeypatch, evaluate=_toy, latency=fake_latency):
    """`nasfer search` runs the real search loop, with `evaluate` instead of training."""
    monkeypatch.setattr(search_module, "search",
                        lambda cfg: SearchRun(cfg, evaluate, latency=latency).run())


# 1. float flags: finite numbers only -------------------------------------------------------------------------------
@pytest.mark.parametrize("kwargs, message", [
    ({"budget_minutes": float("inf")}, "--budget-minutes must be positive and finite"),
    ({"budget_minutes": 1e308}, "--budget-minutes must be positive and finite"),  # 1e308 minutes: inf seconds
    ({"budget_minutes": float("nan")}, "--budget-minutes must be positive"),
    ({"latency_target_ms": float("inf")}, "--latency-target-ms must be a finite number"),
    ({"latency_w": float("-inf")}, "--latency-w must be a finite number"),
    ({"max_latency_ms": float("inf")}, "--max-latency-ms must be a finite number"),
    ({"controller_lr": float("inf")}, "--controller-lr must be a finite number"),
    ({"entropy_weight": float("inf")}, "--entropy-weight must be a finite number"),
    ({"temperature": float("inf")}, "--temperature must be a finite number"),
    ({"tanh_constant": float("inf")}, "--tanh-constant must be a finite number"),
    ({"child_lr": float("inf")}, "--child-lr must be a finite number"),
    ({"child_lr": float("nan")}, "--child-lr must be a finite number"),
])
def test_float_flags_must_be_finite(kwargs, message):
    with pytest.raises(ValueError, match=re.escape(message)):
        check_config(SearchConfig(**kwargs))


@pytest.mark.parametrize("value", ["inf", "1e308"])
def test_an_infinite_budget_is_a_flag_error_not_an_overflow(tmp_path, capsys, value):
    """Before: OverflowError at tqdm(total=int(inf)), a traceback."""
    code = main(["search", "--data", str(tmp_path), "--out", str(tmp_path / "s"), "--budget-minutes", value])
    err = capsys.readouterr().err
    assert code == 2 and err.startswith("nasfer search: error: --budget-minutes must be positive and finite")
    assert len(err.strip().splitlines()) == 1


# 2. --out that is a file ---------------------------------------------------------------------------------------------
def test_an_out_that_is_a_file_is_refused_before_anything_is_made(tmp_path, capsys):
    """Before: FileExistsError in runlock.py, a traceback."""
    afile = tmp_path / "afile"
    afile.write_text("mine")
    code = main(["search", "--data", str(tmp_path), "--out", str(afile), "--budget-minutes", "1"])
    err = capsys.readouterr().err
    assert code == 2
    assert err.strip() == (f"nasfer search: error: --out {afile}: a file is there; the search directory must be a "
                           "folder")
    assert afile.read_text() == "mine" and sorted(p.name for p in tmp_path.iterdir()) == ["afile"]
    assert main(["search", "--data", str(tmp_path), "--out", str(afile / "sub"), "--budget-minutes", "1"]) == 2
    assert f"{afile} is a file; the search directory must be a folder" in capsys.readouterr().err
    assert sorted(p.name for p in tmp_path.iterdir()) == ["afile"]


# 3. the retraining command of a nasnet search builds the network searched --------------------------------------------
def test_the_printed_train_command_builds_the_searched_nasnet_size(tmp_path, monkeypatch, capsys):
    """Before: `nasfer train --genotype best_arch.json` built the default F=16, N=2 network, not the searched one."""
    from nasfer.config import TrainConfig, from_args
    from nasfer.models import create_model
    from nasfer.training.model import build_model

    _cli_with_toy(monkeypatch, latency=None)
    out = tmp_path / "n"
    assert main(["search", "--data", str(tmp_path / "faces"), "--out", str(out), "--space", "nasnet", "--filters", "8",
                 "--cells", "1", "--blocks", "2", "--strategy", "random", "--max-children", "3", "--rungs", "10s@24",
                 "--latency-target-ms", "0", "--max-latency-ms", "0", "--no-progress"]) == 0
    printed = capsys.readouterr().out.split("train it with: ")[1].strip()
    summary = json.loads((out / "summary.json").read_text())
    assert printed == summary["train_command"]
    argv = shlex.split(printed)
    assert argv[:2] == ["nasfer", "train"] and argv[argv.index("--width") + 1] == "8"
    assert argv[argv.index("--cells") + 1] == "1" and argv[argv.index("--genotype") + 1] == str(out / "best_arch.json")

    def params(model):
        return sum(p.numel() for p in model.parameters())

    train_cfg = from_args(TrainConfig, build_parser().parse_args(argv[1:]))
    model, name, _ = build_model(train_cfg, 7)
    space = search_module.make_search_space(SearchConfig(space="nasnet", F=8, N=1, blocks=2))
    searched_name, searched_kwargs = space.model(summary["best"]["spec"])
    searched = create_model(searched_name, num_classes=7, in_channels=1, **searched_kwargs)
    assert name == searched_name and params(model) == params(searched)
    default, _, _ = build_model(TrainConfig(genotype=str(out / "best_arch.json")), 7)  # what the old line built
    assert params(default) != params(searched)


def test_a_macro_search_prints_no_size_flags(tmp_path):
    result = search(SearchConfig(out=str(tmp_path / "m"), data="faces.zip", max_children=2, **TOY), _toy)
    assert result.summary["train_command"] == (f"nasfer train --data faces.zip --genotype {tmp_path / 'm'}/best_arch.json"
                                               " --out runs/searched")


# 4. the budget estimate: trained jobs only ---------------------------------------------------------------------------
def test_children_skipped_for_latency_do_not_pull_the_estimate_down(tmp_path):
    def slow(spec, fidelity):
        time.sleep(0.2)
        return _toy(spec, fidelity)

    cfg = SearchConfig(out=str(tmp_path / "s"), **{**TOY, "max_children": 10, "max_latency_ms": 2.5,
                                                   "latency_target_ms": 2.0})
    run = SearchRun(cfg, slow, latency=fake_latency)
    run.run()
    children = [r for r in _lines(tmp_path / "s") if r["kind"] == "child"]
    trained = [r for r in children if not r.get("infeasible")]
    assert len(trained) < len(children)  # some were skipped
    assert len(run.durations[0]) == len(trained) and min(run.durations[0]) >= 0.2
    assert run.estimate(0) >= 0.2


# 5. no trained child: no winner --------------------------------------------------------------------------------------
def test_when_every_child_is_too_slow_there_is_no_winner_and_a_clear_error(tmp_path):
    """Before: exit 0 with an untrained child (accuracy 0) as the winner in best_arch.json."""
    out = tmp_path / "s"
    cfg = SearchConfig(out=str(out), **{**TOY, "max_children": 4, "max_latency_ms": 0.001, "latency_target_ms": 2.0})
    with pytest.raises(ValueError, match=r"no child was trained.*4 were slower than --max-latency-ms 0\.001.*"
                                         r"raise --max-latency-ms"):
        search(cfg, _toy, latency=fake_latency)
    assert not (out / "best_arch.json").exists()
    summary = json.loads((out / "summary.json").read_text())  # what was measured is kept
    assert summary["best"] is None and summary["train_command"] is None and summary["infeasible"] == 4
    assert "raise --max-latency-ms" in summary["no_winner"] and len(_lines(out)) == 4


def test_the_cli_says_why_there_is_no_winner_in_one_line(tmp_path, monkeypatch, capsys):
    _cli_with_toy(monkeypatch)
    code = main(["search", "--data", str(tmp_path), "--out", str(tmp_path / "s"), "--strategy", "random",
                 "--blocks", "2", "--max-children", "3", "--rungs", "10s@24", "--max-latency-ms", "0.001",
                 "--no-progress"])
    captured = capsys.readouterr()
    assert code == 2 and "best child" not in captured.out
    assert captured.err.startswith("nasfer search: error: no child was trained")
    assert len(captured.err.strip().splitlines()) == 1 and "raise --max-latency-ms" in captured.err


def test_a_child_skipped_for_latency_is_never_ranked_first(tmp_path):
    """Trained children of accuracy 0 tie with a skipped one (objective 0): before, the earlier (skipped) won."""
    from nasfer.nas.results import ranking

    calls = []

    def first_is_slow(name, kwargs):
        calls.append(1)
        return {"ms_per_face_b1": 9.0 if len(calls) == 1 else 1.0, "ms_per_face_b64": 1.0, "params": 1}

    cfg = SearchConfig(out=str(tmp_path / "s"), **{**TOY, "max_children": 4, "max_latency_ms": 2.0,
                                                   "latency_target_ms": 1.0})
    run = SearchRun(cfg, lambda spec, fidelity: 0.0, latency=first_is_slow)
    result = run.run()
    assert result.best["id"] == 1 and all(not t["scores"]["0"].get("infeasible") for t in ranking(run))
    assert len(ranking(run)) == 3 and json.loads((tmp_path / "s" / "summary.json").read_text())["best"]["child"] == 1


# 6. + 7. Ctrl-C: the time spent is kept; the message says how to continue ------------------------------------------
def _interrupting(at_call: int, seconds: float = 0.3):
    calls = []

    def evaluate(spec, fidelity):
        calls.append(1)
        if len(calls) == at_call:
            time.sleep(3 * seconds)
            raise KeyboardInterrupt
        time.sleep(seconds)
        return _toy(spec, fidelity)

    return evaluate


def test_an_interrupted_search_keeps_the_time_it_spent(tmp_path):
    """Before: the time of the unfinished child was lost, so a resumed search could overrun --budget-minutes."""
    cfg = SearchConfig(out=str(tmp_path / "s"), **{**TOY, "max_children": 4})
    started = time.monotonic()
    with pytest.raises(KeyboardInterrupt):
        search(cfg, _interrupting(3))
    spent = time.monotonic() - started
    again = SearchRun(cfg, _toy)
    assert again.resume() and again.jobs == 2 and len(_lines(tmp_path / "s")) == 2  # the finished jobs
    assert 0.3 * 2 + 0.9 <= again.elapsed_before <= spent + 0.01  # and the interrupted one's time
    resumed = search(cfg, _toy)
    assert resumed.summary["children"] == 4 and resumed.summary["elapsed_s"] >= 1.5


def test_an_interruption_during_the_first_child_keeps_its_time_too(tmp_path):
    cfg = SearchConfig(out=str(tmp_path / "s"), **{**TOY, "max_children": 2})
    with pytest.raises(KeyboardInterrupt):
        search(cfg, _interrupting(1))
    again = SearchRun(cfg, _toy)
    assert again.resume() and again.jobs == 0 and not again.trials and again.elapsed_before >= 0.9
    assert search(cfg, _toy).summary["children"] == 2


def test_ctrl_c_says_the_same_command_continues_the_search(tmp_path, monkeypatch, capsys):
    argv = ["search", "--data", str(tmp_path), "--out", str(tmp_path / "s"), "--strategy", "random", "--blocks", "2",
            "--max-children", "3", "--rungs", "10s@24", "--latency-target-ms", "0", "--max-latency-ms", "0",
            "--no-progress"]
    _cli_with_toy(monkeypatch, evaluate=_interrupting(2, seconds=0.01))
    assert main(argv) == 130
    err = capsys.readouterr().err
    assert err.strip() == (f"nasfer search: interrupted; the same command continues it from {tmp_path / 's'} (the "
                           "time spent so far counts against --budget-minutes)")
    _cli_with_toy(monkeypatch)
    assert main(argv) == 0 and json.loads((tmp_path / "s" / "summary.json").read_text())["children"] == 3


# 8. off a terminal: one line per finished child or promotion ---------------------------------------------------------
def test_off_a_terminal_each_finished_child_and_promotion_prints_one_line(tmp_path, capsys):
    """Before: nothing until the end (a nohup log stayed empty for hours). Under pytest stdout is no terminal."""
    cfg = SearchConfig(out=str(tmp_path / "s"), **{**TOY, "max_children": 9, "rungs": ("10s@24", "20s@24"),
                                                   "progress": True, "latency_target_ms": 2.0, "max_latency_ms": 2.5})
    search(cfg, _toy, latency=fake_latency)
    out = capsys.readouterr().out.splitlines()
    jobs = [r for r in _lines(tmp_path / "s") if r["kind"] != "duplicate"]
    printed = [line for line in out if line.startswith("s job ")]  # the folder's name first
    assert len(printed) == len(jobs) and any(r["kind"] == "promotion" for r in jobs)
    assert out[0].startswith("search (macro, random) in ") and "budget 5.0 min" in out[0]
    for line, r in zip(printed, jobs):
        assert line.startswith(f"s job {r['job']}: child {r['child']}") and line.endswith("/5.0 min")
        if r["kind"] == "promotion":
            assert " promoted at 20s@24: accuracy " in line
        elif r.get("infeasible"):
            assert "> --max-latency-ms 2.5: not trained" in line
        else:
            assert f"at 10s@24: accuracy {r['accuracy']:.4f}, {r['latency']['ms_per_face_b1']:.3f} ms/face (batch 1)" in line
    search(SearchConfig(out=str(tmp_path / "quiet"), **{**TOY, "max_children": 2}), _toy)  # --no-progress: silent
    assert capsys.readouterr().out == ""


# 9. messages ---------------------------------------------------------------------------------------------------------
def test_the_printed_latency_is_at_the_batch_of_the_objective(tmp_path, monkeypatch, capsys):
    """Before: "(batch 1)" with the batch-1 figure, even with --latency-batch 64."""
    _cli_with_toy(monkeypatch)
    assert main(["search", "--data", str(tmp_path), "--out", str(tmp_path / "s"), "--strategy", "random",
                 "--blocks", "2", "--max-children", "2", "--rungs", "10s@24", "--latency-batch", "64",
                 "--max-latency-ms", "0", "--no-progress"]) == 0
    best = json.loads((tmp_path / "s" / "summary.json").read_text())["best"]
    line = capsys.readouterr().out.splitlines()[0]
    assert f"{best['latency']['ms_per_face_b64']:.3f} ms/face (batch 64, " in line and "batch 1" not in line


@pytest.mark.parametrize("kwargs, message", [
    ({"eta": 0}, "--eta must be at least 2 (the best 1/eta of each rung is promoted), got 0"),
    ({"eta": 1}, "--eta must be at least 2 (the best 1/eta of each rung is promoted), got 1"),
    ({"strategy": "evolution", "tournament": 50}, "--tournament must be 2..--population (20) with --strategy "
                                                  "evolution, got 50"),
    ({"strategy": "evolution", "tournament": 1}, "--tournament must be 2..--population (20)"),
    ({"strategy": "evolution", "population": 1, "tournament": 1}, "--population must be at least 2 with --strategy "
                                                                  "evolution, got 1"),
])
def test_messages_name_the_flags_and_their_real_bounds(kwargs, message):
    with pytest.raises(ValueError, match=re.escape(message)):
        check_config(SearchConfig(**kwargs))


def test_a_new_search_saves_its_state_before_the_first_job(tmp_path):
    """So a Ctrl-C in the first child has a state to keep the time in; the log starts empty."""
    seen = []

    def look(spec, fidelity):
        seen.append((tmp_path / "s" / STATE_FILE).is_file())
        return _toy(spec, fidelity)

    search(SearchConfig(out=str(tmp_path / "s"), **{**TOY, "max_children": 1}), look)
    assert seen == [True]


def test_sigterm_keeps_the_time_spent_like_ctrl_c(tmp_path):
    """Before: SIGTERM (`kill`, `timeout`, a scheduler) ended the search without saving, so the unfinished
    child's time was lost and a resumed search could overrun --budget-minutes."""
    import os
    import signal

    def unhandled(*_):
        raise AssertionError("SIGTERM reached the default handler: the search did not handle it")

    calls = []

    def evaluate(spec, fidelity):
        calls.append(1)
        if len(calls) == 3:
            time.sleep(0.9)
            os.kill(os.getpid(), signal.SIGTERM)
            time.sleep(5)  # the signal arrives here
            raise AssertionError("SIGTERM did not stop the search")
        time.sleep(0.3)
        return _toy(spec, fidelity)

    previous = signal.signal(signal.SIGTERM, unhandled)
    previous_int = signal.signal(signal.SIGINT, lambda *_: None)  # a handler left by another library: not used
    try:
        cfg = SearchConfig(out=str(tmp_path / "s"), **{**TOY, "max_children": 4})
        with pytest.raises(KeyboardInterrupt):
            search(cfg, evaluate)
        assert signal.getsignal(signal.SIGTERM) is unhandled  # the handler before the search is back
    finally:
        signal.signal(signal.SIGTERM, previous)
        signal.signal(signal.SIGINT, previous_int)
    again = SearchRun(cfg, _toy)
    assert again.resume() and again.jobs == 2 and again.elapsed_before >= 0.3 * 2 + 0.9


def test_a_sigterm_whose_exception_python_drops_still_stops_the_search(tmp_path, monkeypatch):
    """Before: a SIGTERM landing while a weakref callback ran raised Terminated inside it, Python printed
    "Exception ignored in ..." and dropped it, and the search went on to its budget (seen in a campaign)."""
    import signal
    import sys
    import weakref

    dropped, calls = [], []
    monkeypatch.setattr(sys, "unraisablehook", lambda unraisable: dropped.append(unraisable.exc_value))

    def evaluate(spec, fidelity):
        calls.append(1)
        if len(calls) == 2:
            class Thing:
                pass

            thing = Thing()
            ref = weakref.ref(thing, lambda _: signal.raise_signal(signal.SIGTERM))  # noqa: F841
            del thing  # the callback runs; the handler's Terminated is dropped by Python
        return _toy(spec, fidelity)

    cfg = SearchConfig(out=str(tmp_path / "s"), **{**TOY, "max_children": 4})
    with pytest.raises(KeyboardInterrupt):
        search(cfg, evaluate)
    assert [type(e).__name__ for e in dropped] == ["Terminated"] and len(calls) == 2  # no third child
    assert SearchRun(cfg, _toy).resume()  # saved as after Ctrl-C: the same command continues


@pytest.mark.parametrize("strategy", ["random", "evolution"])  # evolution proposes duplicates in between
def test_a_search_where_no_child_is_fast_enough_stops_early(tmp_path, monkeypatch, strategy):
    """Before: with every child over --max-latency-ms, the whole --budget-minutes went to timing children (about
    1 s each) that could never be trained, and only then came the no-winner error."""
    monkeypatch.setattr(search_module, "MAX_INFEASIBLE_BEFORE_ANY_TRAINED", 6)
    out = tmp_path / "s"
    cfg = SearchConfig(out=str(out), **{**TOY, "strategy": strategy, "population": 3, "tournament": 2, "blocks": 3, "max_children": 0, "budget_minutes": 60,
                                        "max_latency_ms": 0.001, "latency_target_ms": 2.0})
    with pytest.raises(ValueError, match=r"no child was trained.*6 were slower"):
        search(cfg, _toy, latency=fake_latency)
    summary = json.loads((out / "summary.json").read_text())
    assert summary["children"] == 6 and summary["elapsed_s"] < 60
    assert "stopped early: 6 children, and none trained yet, were slower than --max-latency-ms 0.001" in summary["notes"]


def test_a_search_with_a_trained_child_goes_on_past_slow_ones(tmp_path, monkeypatch):
    monkeypatch.setattr(search_module, "MAX_INFEASIBLE_BEFORE_ANY_TRAINED", 3)
    calls = []

    def first_fast(name, kwargs):
        calls.append(1)
        return {"ms_per_face_b1": 0.5 if len(calls) == 1 else 9.0, "ms_per_face_b64": 1.0, "params": 1}

    cfg = SearchConfig(out=str(tmp_path / "s"), **{**TOY, "blocks": 3, "max_children": 8, "max_latency_ms": 2.0,
                                                   "latency_target_ms": 1.0})
    result = search(cfg, _toy, latency=first_fast)
    assert result.summary["children"] == 8 and result.summary["infeasible"] == 7  # not stopped after 3


def test_sigterm_stops_a_command_started_with_sigint_ignored():
    """A script's background job (`cmd &`) starts with SIGINT ignored: re-raising SIGINT did nothing there, so
    `kill` could no longer stop a search (before the fix it ran on)."""
    import os
    import signal

    from nasfer.interrupts import Terminated, sigterm_as_sigint

    previous = signal.signal(signal.SIGINT, signal.SIG_IGN)
    try:
        with pytest.raises(Terminated):
            with sigterm_as_sigint(via_sigint=True):  # the Ray Tune path, which re-raises SIGINT where it can
                os.kill(os.getpid(), signal.SIGTERM)
                time.sleep(5)
    finally:
        signal.signal(signal.SIGINT, previous)


def test_the_cli_exits_143_for_sigterm(tmp_path, monkeypatch, capsys):
    from nasfer.interrupts import Terminated

    def terminated(spec, fidelity):
        raise Terminated()

    _cli_with_toy(monkeypatch, evaluate=terminated)
    code = main(["search", "--data", str(tmp_path), "--out", str(tmp_path / "s"), "--strategy", "random",
                 "--blocks", "2", "--max-children", "3", "--rungs", "10s@24", "--latency-target-ms", "0",
                 "--max-latency-ms", "0", "--no-progress"])
    assert code == 143 and capsys.readouterr().err.startswith("nasfer search: stopped (SIGTERM); the same command")


def test_a_nested_sigterm_block_keeps_a_sigterm_the_outer_block_received():
    """A search run inside a campaign enters its own block: a SIGTERM the campaign received (its exception lost)
    must still stop the campaign after it; a new outermost block starts clean."""
    import signal

    from nasfer.interrupts import Terminated, raise_if_terminated, sigterm_as_sigint

    with sigterm_as_sigint():
        try:
            signal.raise_signal(signal.SIGTERM)
        except Terminated:
            pass  # as Python does for an exception raised inside a weakref callback
        with sigterm_as_sigint():
            with pytest.raises(Terminated):
                raise_if_terminated()
        with pytest.raises(Terminated):
            raise_if_terminated()
    with sigterm_as_sigint():
        raise_if_terminated()  # nothing received in this block
