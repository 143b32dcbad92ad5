"""benchmarks/retrain.py: a resumable campaign of searches, retrained winners and controls, on tiny generated data."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))

import retrain  # noqa: E402
import retrain_jobs  # noqa: E402
import retrain_report  # noqa: E402
from common import cpu_identity  # noqa: E402

SEARCH_FLAGS = ("--budget-minutes 1 --max-children 2 --rungs 2s@16 --child-batch 16 --blocks 2 --precision fp32 "
                "--latency-target-ms 0 --max-latency-ms 0 --no-progress")
TRAIN_FLAGS = "--epochs 1 --batch-size 32 --precision fp32 --threads 1"
CALLS = ("run_search", "run_train", "run_export", "run_evaluate", "run_speed")


def campaign_argv(data: Path, work: Path, out: Path, *extra: str, train_flags: str = TRAIN_FLAGS) -> list[str]:
    return ["--data", str(data), "--work-dir", str(work), "--searches", "random:0", "evolution:1",
            "--search-flags", SEARCH_FLAGS, "--controls", "vgg:4", "--train-flags", train_flags,
            "--test-split", "test", "--speed-seconds", "0.02", "--out", str(out), *extra]


def count_calls(monkeypatch, fail: dict[str, int] | None = None) -> dict[str, int]:
    """Wrap the nasfer calls of retrain.py with counters; `fail[name] = n` interrupts the n-th call (a kill)."""
    counts = dict.fromkeys(CALLS, 0)
    for name in CALLS:
        original = getattr(retrain, name)

        def wrapped(*args, _name=name, _original=original):
            counts[_name] += 1
            if fail and fail.get(_name) == counts[_name]:
                raise KeyboardInterrupt("killed")
            return _original(*args)

        monkeypatch.setattr(retrain, name, wrapped)
    return counts


@pytest.mark.slow
def test_a_campaign_runs_end_to_end_and_a_killed_one_continues_without_redoing_finished_jobs(
        tmp_path, learnable_folder, monkeypatch, capsys):
    work, out = tmp_path / "work", tmp_path / "results" / "campaign.json"
    argv = campaign_argv(learnable_folder, work, out, "--quantize", "--max-accuracy-drop", "100")

    # killed during the second search, after the split and the first search were done
    counts = count_calls(monkeypatch, fail={"run_search": 2})
    with pytest.raises(SystemExit, match="interrupted at step 3/.*run the same command to continue"):
        retrain.main(argv)
    partial = json.loads(out.read_text())
    assert partial["complete"] is False and partial["steps_done"] == 2
    assert partial["status"].startswith("stopped at step 3/") and "search evolution seed 1" in partial["status"]
    first = {r["name"]: r for r in partial["jobs"]}["random-s0"]
    assert first["search"]["children"] == 2 and first.get("val_accuracy") is None and not first["complete"]
    finished_search = work / "search-random-s0" / "summary.json"
    stamp = finished_search.stat().st_mtime_ns

    counts = count_calls(monkeypatch)
    assert retrain.main(argv) == 0
    assert counts == {"run_search": 1, "run_train": 3, "run_export": 6, "run_evaluate": 12, "run_speed": 6}
    assert finished_search.stat().st_mtime_ns == stamp  # the finished search was not run again
    result = json.loads(out.read_text())
    assert result["complete"] is True and result["status"] == "complete"
    assert result["steps_done"] == result["steps_total"] == 1 + 2 + 3 * 7 + 3 * 2
    jobs = {r["name"]: r for r in result["jobs"]}
    assert set(jobs) == {"random-s0", "evolution-s1", "vgg4-s0"}
    assert {r["kind"] for r in jobs.values()} == {"search-winner", "control"}
    for row in jobs.values():
        assert row["complete"] and 0 <= row["val_accuracy"] <= 1 and 0 <= row["test_accuracy"] <= 1
        assert row["n_val"] == 28 and row["n_test"] == 56  # the shared split's val part; the test/ folder
        assert row["params"] > 0 and row["multiply_adds"] > 0 and row["ms_per_face_b1"] > 0 and row["faces_per_s_b64"] > 0
        assert row["speed"]["threads"] == 1 and set(row["speed"]["cpu_per_wall"]) == {"cpu_per_wall_1", "cpu_per_wall_64"}
        assert row["int8"]["val_accuracy"] is not None and row["int8"]["parity"]["n"] == 28
        assert "--split-file " + str(work / "splits.json") in row["train_command"]
    winner = jobs["evolution-s1"]
    assert winner["genotype"] == str(work / "search-evolution-s1" / "best_arch.json")
    assert winner["search"]["cpu_hours"] > 0 and winner["search"]["children"] == 2
    assert {"--strategy evolution", "--seed 1", "--split-file " + str(work / "splits.json")} <= {
        " ".join(pair) for pair in zip(winner["search_command"].split(), winner["search_command"].split()[1:])}
    control = jobs["vgg4-s0"]["train_command"]  # --arch vgg is nasfer train's default: left out, as nasfer does
    assert "--width 4" in control and "--genotype" not in control and "--seed" not in control
    groups = result["groups"]
    assert list(groups) == ["random", "evolution", "vgg4"]
    for name, job in (("random", "random-s0"), ("evolution", "evolution-s1"), ("vgg4", "vgg4-s0")):
        assert groups[name]["val_accuracy"] == {"n": 1, "mean": jobs[job]["val_accuracy"], "sd": None,
                                                "values": [jobs[job]["val_accuracy"]]}
    assert groups["random"]["search_cpu_hours"]["n"] == 1 and groups["vgg4"]["search_cpu_hours"] == {"n": 0}
    best = max(jobs.values(), key=lambda r: r["val_accuracy"])
    assert result["best"]["job"] == best["name"]
    table = out.with_suffix(".md").read_text()
    assert "| random | search-winner | 1 |" in table and "| vgg4 int8 | control | 1 |" in table

    # the same command once more: nothing is redone
    counts = count_calls(monkeypatch)
    assert retrain.main(argv) == 0
    assert counts == dict.fromkeys(CALLS, 0)
    capsys.readouterr()
    assert retrain.main(["--table", str(out)]) == 0
    assert capsys.readouterr().out.strip() == table.strip()

    # on a quiet machine: only the speeds are measured again
    counts = count_calls(monkeypatch)
    assert retrain.main(argv + ["--remeasure-speed"]) == 0
    assert counts == {**dict.fromkeys(CALLS, 0), "run_speed": 6}
    again = json.loads(out.read_text())
    assert again["complete"] and again["steps_done"] == again["steps_total"]
    assert again["jobs"][0]["speed"]["measured_at"] > result["jobs"][0]["speed"]["measured_at"]
    assert {r["speed"]["cpu"] for r in again["jobs"]} == {cpu_identity()}

    # carried to a machine with another CPU: a model timed there is timed again here, so one CPU times them all
    speed_file = work / "train-vgg4-s0" / retrain_report.speed_file("fp32")
    speed_file.write_text(json.dumps({**json.loads(speed_file.read_text()), "cpu": "another CPU"}))
    counts = count_calls(monkeypatch)
    assert retrain.main(argv) == 0
    assert counts == {**dict.fromkeys(CALLS, 0), "run_speed": 1}
    assert json.loads(speed_file.read_text())["cpu"] == cpu_identity()
    # ... and so is one timed on a CPU of the same name whose int8/bf16 flags are unknown (a file of an older
    # nasfer, which recorded the name only) or other: one model name covers VMs with and without AVX-512 VNNI
    name = retrain_report.cpu_model()
    other = next(c for c in (name, name + " (avx2)") if c != cpu_identity())  # what differs from this machine's
    speed_file.write_text(json.dumps({**json.loads(speed_file.read_text()), "cpu": other}))
    counts = count_calls(monkeypatch)
    assert retrain.main(argv) == 0
    assert counts == {**dict.fromkeys(CALLS, 0), "run_speed": 1}
    assert json.loads(speed_file.read_text())["cpu"] == cpu_identity()

    # each model's test score is recorded in its card once (nasfer evaluate --record), as its JSON says
    job_dir = work / "train-vgg4-s0"
    for variant, onnx in retrain_report.VARIANTS.items():
        scored = json.loads((job_dir / retrain_report.eval_file(variant, "test")).read_text())
        recorded = json.loads((job_dir / onnx).with_suffix(".json").read_text())["metrics"]["test"]
        assert recorded["accuracy"] == scored["accuracy"] and "--record" in recorded["recorded"]["command"]
    # a run stopped after the card's record and before the JSON: scored again, not recorded twice
    card = (job_dir / retrain_report.VARIANTS["int8"]).with_suffix(".json")
    before = json.loads(card.read_text())["metrics"]["test"]
    (job_dir / retrain_report.eval_file("int8", "test")).unlink()
    counts = count_calls(monkeypatch)
    assert retrain.main(argv) == 0
    assert counts == {**dict.fromkeys(CALLS, 0), "run_evaluate": 1}
    assert json.loads(card.read_text())["metrics"]["test"] == before
    assert "previous_records" not in json.loads(card.read_text())


def test_a_test_split_the_data_lacks_fails_at_the_first_step(tmp_path, learnable_folder):
    argv = campaign_argv(learnable_folder, tmp_path / "work", tmp_path / "out.json")
    argv[argv.index("--test-split") + 1] = "PublicTest"
    with pytest.raises(SystemExit, match=r"error at step 1/.*--test-split PublicTest: .* has no such split \(test, train\)"):
        retrain.main(argv)
    assert json.loads((tmp_path / "out.json").read_text())["status"].startswith("stopped at step 1/")


@pytest.mark.parametrize("flags, message", [
    (("--train-flags", "--epochs 1 --preciison fp32"), "--train-flags: unrecognized arguments: --preciison"),
    (("--train-flags", "--seed 3"), "each job sets itself"),
    (("--train-flags", "--cells 1"), "each job sets itself"),
    (("--train-flags", "--epoch 3"), "unrecognized arguments: --epoch 3"),  # no abbreviations
    (("--train-flags", "--epochs three"), "argument --epochs: invalid int value"),
    (("--train-flags", "--teacher no-such-teacher"), "no-such-teacher: no such model file"),
    (("--train-flags", "--preset quick"), "unknown preset 'quick'"),
    (("--train-flags", "--split-file missing.json"), "split file not found"),
    (("--search-flags", "--rungs fast"), "fidelity 'fast'"),
    (("--search-flags", "--strategy random"), "--search-flags: unrecognized arguments: --strategy"),
    (("--searches", "annealing:0"), "STRATEGY one of reinforce, random, evolution"),
    (("--controls", "vgg:wide"), "width after ':' (F in N@F) must be a positive integer"),
    (("--controls", "vgg:1@8"), "N@F (cells per stack @ width) is for NASNet models"),
    (("--controls", "nasnet-a-mobile:0@8"), "the N in N@F must be a positive integer"),
    (("--controls", "nasnet-a-mobile:1@"), "(F in N@F) must be a positive integer"),  # was a ValueError traceback
    (("--train-flags", "--epochs 1 --label-smoothing 2"), "--label-smoothing must be in [0, 1), got 2"),
    (("--controls", "resnet99"), "unknown architecture 'resnet99'"),
    (("--controls", "x=missing.json"), "architecture file not found"),
    (("--test-split", "val"), "not a test split"),
    (("--search-flags", SEARCH_FLAGS + " --population 3 --tournament 5"), "--tournament must be 2..--population (3)"),
])
def test_bad_flags_fail_before_any_work_with_a_clear_message(tmp_path, monkeypatch, flags, message):
    monkeypatch.chdir(tmp_path)
    counts = count_calls(monkeypatch)
    argv = campaign_argv(tmp_path, tmp_path / "work", tmp_path / "out.json")
    for flag, value in zip(flags[::2], flags[1::2]):
        argv[argv.index(flag) + 1] = value
    with pytest.raises(SystemExit) as exc:
        retrain.main(argv)
    assert message in str(exc.value)
    assert not (tmp_path / "work").exists() and not (tmp_path / "out.json").exists()
    assert counts == dict.fromkeys(CALLS, 0)


def test_a_work_directory_keeps_its_settings_but_takes_new_jobs(tmp_path, monkeypatch):
    argv = campaign_argv(tmp_path, tmp_path / "work", tmp_path / "out.json")
    campaign = retrain.Runner(retrain.parse_args(argv))
    retrain_report.write_json(tmp_path / "work" / "campaign.json", {"command": "first", "settings": campaign.settings()})
    retrain.Runner(retrain.parse_args(argv + ["--control-seeds", "0", "1"])).check_settings()  # more seeds: fine
    more_cores = campaign_argv(tmp_path, tmp_path / "work", tmp_path / "out.json",
                               train_flags=TRAIN_FLAGS.replace("--threads 1", "--threads 2"))
    retrain.Runner(retrain.parse_args(more_cores)).check_settings()  # the trainings' threads: only their speed changes
    with pytest.raises(SystemExit, match=r"other settings \(search.blocks: 2 -> 3\); run it with its own command \(first\)"):
        retrain.main(campaign_argv(tmp_path, tmp_path / "work", tmp_path / "out.json") + [
            "--search-flags", SEARCH_FLAGS.replace("--blocks 2", "--blocks 3")])
    longer = campaign_argv(tmp_path, tmp_path / "work", tmp_path / "out.json",
                           train_flags=TRAIN_FLAGS.replace("--epochs 1", "--epochs 2"))
    (tmp_path / "work" / "train-vgg4-s0").mkdir()
    (tmp_path / "work" / "train-vgg4-s0" / "last.pt").write_bytes(b"")  # a training has begun: its flags are fixed
    with pytest.raises(SystemExit, match=r"other settings \(train.epochs: 1 -> 2\); the training flags may change "
                                         r"only before the first training begins \(train-vgg4-s0 began\)"):
        retrain.main(longer)


def test_split_flags_never_change_threads_always_may_and_train_jobs_need_threads(tmp_path):
    work = tmp_path / "work"
    argv = campaign_argv(tmp_path, work, tmp_path / "out.json")
    retrain_report.write_json(work / "campaign.json", {"command": "first", "settings": retrain.Runner(
        retrain.parse_args(argv)).settings()})
    (work / "train-vgg4-s0").mkdir()
    (work / "train-vgg4-s0" / "last.pt").write_bytes(b"")  # a training has begun
    no_threads = campaign_argv(tmp_path, work, tmp_path / "out.json", train_flags=TRAIN_FLAGS.replace(" --threads 1", ""))
    assert retrain.Runner(retrain.parse_args(no_threads)).check_settings() == []  # --threads dropped: speed only
    # --device too (before: refused, so trainings begun on a CPU could not continue on a GPU when one came)
    on_device = campaign_argv(tmp_path, work, tmp_path / "out.json", train_flags=TRAIN_FLAGS + " --device cpu")
    assert retrain.Runner(retrain.parse_args(on_device)).check_settings() == []
    (work / "train-vgg4-s0" / "last.pt").unlink()  # before any training: still, the split's flags are fixed
    other_split = campaign_argv(tmp_path, work, tmp_path / "out.json", train_flags=TRAIN_FLAGS + " --val-fraction 0.2")
    with pytest.raises(SystemExit, match=r"train.val_fraction: 0.1 -> 0.2"):
        retrain.Runner(retrain.parse_args(other_split)).check_settings()
    with pytest.raises(SystemExit, match=r"--train-jobs 2: give each training its threads"):
        retrain.main(campaign_argv(tmp_path, tmp_path / "w2", tmp_path / "o2.json", "--train-jobs", "2",
                                   train_flags=TRAIN_FLAGS.replace(" --threads 1", "")))
    assert not (tmp_path / "w2").exists()


def test_training_flags_may_change_until_the_first_training_begins(tmp_path, learnable_folder, monkeypatch):
    """Found in a campaign: its trainings were set to bf16 autocast, which this machine's CPU only emulates (a
    first epoch of 20+ minutes), and no training had finished; the flags could not be changed without
    throwing away the finished searches."""
    work = tmp_path / "work"
    argv = campaign_argv(learnable_folder, work, tmp_path / "out.json")
    campaign = retrain.Runner(retrain.parse_args(argv))
    retrain_report.write_json(work / "campaign.json", {"command": "first", "date_started": "then",
                                                       "settings": campaign.settings()})
    (work / "train-vgg4-s0").mkdir()
    (work / "train-vgg4-s0" / "config.json").write_text("{}")  # started, but no epoch finished
    longer = campaign_argv(learnable_folder, work, tmp_path / "out.json",
                         train_flags=TRAIN_FLAGS.replace("--epochs 1", "--epochs 2"))
    assert retrain.Runner(retrain.parse_args(longer)).check_settings() == ["train.epochs: 1 -> 2"]
    count_calls(monkeypatch, fail={"run_search": 1})
    with pytest.raises(SystemExit, match="interrupted at step 2/"):
        retrain.main(longer)
    saved = json.loads((work / "campaign.json").read_text())
    assert saved["settings"]["train"]["epochs"] == 2 and saved["date_started"] == "then"
    assert saved["command"].startswith("python benchmarks/retrain.py ") and "--epochs 2" in saved["command"]
    assert [c["previous_command"] for c in saved["changes"]] == ["first"]
    assert saved["changes"][0]["changed"] == ["train.epochs: 1 -> 2"]


def test_a_nasnet_control_trains_with_its_cells_and_width(tmp_path):
    argv = campaign_argv(tmp_path, tmp_path / "work", tmp_path / "out.json")
    argv[argv.index("--controls") + 1] = "nasnet-a-mobile:1@4"
    campaign = retrain.Runner(retrain.parse_args(argv))
    (job,) = [j for j in campaign.jobs if j.kind == "control"]
    spec = campaign.spec(job)
    assert (spec["group"], spec["width"], spec["cells"]) == ("nasnet-a-mobile-1@4", 4, 1)
    assert {"--arch nasnet-a-mobile", "--width 4", "--cells 1"} <= {
        " ".join(pair) for pair in zip(spec["train_command"].split(), spec["train_command"].split()[1:])}


def test_a_nasnet_search_winner_retrains_at_the_searched_width_and_cells(tmp_path):
    """best_arch.json of a NASNet search holds the cells, not F and N: before, the winner was retrained at the
    default size (734k parameters for a 121k-parameter search at F=8, N=1)."""
    argv = campaign_argv(tmp_path, tmp_path / "work", tmp_path / "out.json")
    argv[argv.index("--search-flags") + 1] = SEARCH_FLAGS + " --space nasnet --filters 8 --cells 1"
    campaign = retrain.Runner(retrain.parse_args(argv))
    winner = next(j for j in campaign.jobs if j.kind == "search-winner")
    cfg = campaign.train_config(winner)
    assert (cfg.width, cfg.cells) == (8, 1) and cfg.genotype.endswith("best_arch.json")
    macro = retrain.Runner(retrain.parse_args(campaign_argv(tmp_path, tmp_path / "w2", tmp_path / "o2.json")))
    plain = macro.train_config(next(j for j in macro.jobs if j.kind == "search-winner"))
    assert plain.cells == macro.train_cfg.cells and plain.width == macro.train_cfg.width  # macro: as given


def test_controls_name_architectures_widths_and_files(tmp_path):
    from nasfer.nas.macro import vgg_spec

    spec = tmp_path / "found" / "best_arch.json"
    spec.parent.mkdir()
    spec.write_text(json.dumps(vgg_spec(8)))
    assert retrain_jobs.parse_control("vgg16") == {"kind": "control", "group": "vgg16", "arch": "vgg", "width": 16}
    assert retrain_jobs.parse_control("mini-xception")["group"] == "mini-xception"
    assert retrain_jobs.parse_control("nasnet-a-mobile:1@8") == {  # NASNet-A at N @ F, the paper's notation
        "kind": "control", "group": "nasnet-a-mobile-1@8", "arch": "nasnet-a-mobile", "width": 8, "cells": 1}
    named = retrain_jobs.parse_control(f"searched={spec}")
    assert named == {"kind": "genotype", "group": "searched", "genotype": str(spec.resolve())}
    assert retrain_jobs.parse_control(str(spec))["group"] == "found"


def _row(name, group, kind, seed, val, test, **extra):
    row = {"name": name, "group": group, "kind": kind, "seed": seed}
    if val is None:  # a job still training has no figures yet
        return row
    return {**row, "val_accuracy": val, "test_accuracy": test, "test_macro_f1": test - 0.1, "ms_per_face_b1": 0.2,
            "faces_per_s_b64": 1000.0, "params": 1000, "multiply_adds": 2_000_000, **extra}


def test_the_plot_draws_each_scored_and_timed_model_at_its_test_accuracy_and_ms_per_face(tmp_path, capsys):
    import matplotlib.image

    rows = [_row("random-s0", "random", "search-winner", 0, 0.60, 0.64, ms_per_face_b1=0.7,
                 int8={"test_accuracy": 0.63, "ms_per_face_b1": 0.3}),
            _row("vgg16-s0", "vgg16", "control", 0, 0.61, 0.62, int8={"refused": "int8 quantization refused: ..."}),
            _row("vgg16-s1", "vgg16", "control", 1, None, None)]  # still training: not drawn
    result = {"benchmark": "retrain", "settings": {"test_split": "PublicTest", "threads": 1}, "jobs": rows,
              "groups": retrain_report.groups(rows), "best": retrain_report.best_job(rows), "command": "...",
              "complete": True}
    assert retrain_report.pareto_rows(result) == [  # test accuracy, not validation; int8 where it was made
        {"name": "random-s0", "accuracy": 0.64, "ms_per_face_batch_1_one_thread": 0.7},
        {"name": "random-s0 int8", "accuracy": 0.63, "ms_per_face_batch_1_one_thread": 0.3},
        {"name": "vgg16-s0", "accuracy": 0.62, "ms_per_face_batch_1_one_thread": 0.2}]
    path, png = tmp_path / "r.json", tmp_path / "front.png"
    path.write_text(json.dumps(result))
    path.with_name("r0.json").write_text(json.dumps(result))
    assert retrain.main(["--table", str(path), "--plot", str(png)]) == 0
    assert f"wrote {png}" in capsys.readouterr().out and matplotlib.image.imread(png).shape[2] in (3, 4)
    path.write_text(json.dumps({**result, "jobs": rows[2:], "groups": retrain_report.groups(rows[2:])}))  # nothing to draw: a clear refusal, no empty plot
    with pytest.raises(SystemExit, match="no model of .* has both a test score and a speed yet"):
        retrain.main(["--table", str(path), "--plot", str(tmp_path / "none.png")])
    with pytest.raises(SystemExit, match="cannot write it"):  # a file where the plot's folder would go
        retrain.main(["--table", str(path.with_name("r0.json")), "--plot", str(path / "x.png")])
    capsys.readouterr()
    with pytest.raises(SystemExit):  # --plot without --table: argparse's usage error, naming the rule
        retrain.main(["--plot", str(png)])
    assert "--plot goes with --table" in capsys.readouterr().err


def test_groups_give_mean_sd_and_n_and_the_best_job_is_chosen_on_validation_only(tmp_path, capsys):
    rows = [_row("reinforce-s0", "reinforce", "search-winner", 0, 0.60, 0.70, search_cpu_hours=2.0),
            _row("reinforce-s1", "reinforce", "search-winner", 1, 0.62, 0.50, search_cpu_hours=2.5),
            _row("vgg16-s0", "vgg16", "control", 0, 0.61, 0.80, int8={"refused": "int8 quantization refused: ..."}),
            _row("vgg16-s1", "vgg16", "control", 1, None, None)]  # still training
    groups = retrain_report.groups(rows)
    acc = groups["reinforce"]["val_accuracy"]
    assert acc["n"] == 2 and acc["mean"] == pytest.approx(0.61) and acc["sd"] == pytest.approx(0.0141421, rel=1e-4)
    assert groups["vgg16"]["val_accuracy"]["n"] == 1 and groups["vgg16"]["int8"]["refused"] == ["vgg16-s0"]
    assert groups["reinforce"]["search_cpu_hours"]["mean"] == pytest.approx(2.25)
    best = retrain_report.best_job(rows)
    assert best["job"] == "reinforce-s1"  # highest validation accuracy; vgg16-s0 has the highest test accuracy
    result = {"benchmark": "retrain", "complete": False, "status": "step 9/40 finished: train vgg16-s0",
              "command": "python benchmarks/retrain.py ...", "settings": {"test_split": "PublicTest", "threads": 1},
              "jobs": rows, "groups": groups, "best": best}
    path = tmp_path / "r.json"
    path.write_text(json.dumps(result))
    assert retrain.main(["--table", str(path)]) == 0
    table = capsys.readouterr().out
    assert "| reinforce | search-winner | 2 | 61.00 ± 1.41 | 60.00 ± 14.14 |" in table
    assert "| vgg16 int8 (1 refused) | control | 0 |" in table
    assert "| vgg16-s0 | vgg16 | 0 | 61.00 | 80.00 | 0.700 | 1,000 | 0.200 | 1,000 | refused |" in table
    assert "Best by validation accuracy: reinforce-s1 (62.00%)" in table and "INCOMPLETE (step 9/40" in table
    (tmp_path / "other.json").write_text("{}")
    with pytest.raises(SystemExit, match="not a result of benchmarks/retrain.py"):
        retrain.main(["--table", str(tmp_path / "other.json")])
    with pytest.raises(SystemExit, match="missing.json: no such file"):
        retrain.main(["--table", str(tmp_path / "missing.json")])


def test_the_fast_model_is_the_most_accurate_search_winner_no_slower_than_vgg16_chosen_on_validation(tmp_path, capsys):
    rows = [_row("vgg16-s0", "vgg16", "control", 0, 0.630, 0.99, ms_per_face_b1=0.20),
            _row("vgg16-s1", "vgg16", "control", 1, 0.645, 0.10, ms_per_face_b1=0.22),
            _row("random-s0", "random", "search-winner", 0, 0.660, 0.99, ms_per_face_b1=0.50),  # too slow
            _row("random-s1", "random", "search-winner", 1, 0.640, 0.10, ms_per_face_b1=0.22,  # within 0.21 + 5%
                 genotype="/runs/issue11/search-random-s1/best_arch.json"),
            _row("evolution-s0", "evolution", "search-winner", 0, 0.620, 0.99, ms_per_face_b1=0.10),
            _row("mini-xception-s0", "mini-xception", "control", 0, 0.700, 0.99, ms_per_face_b1=0.05)]
    choice = retrain_report.fast_choice(rows)
    assert choice["max_ms_per_face_b1"] == pytest.approx(0.21 * 1.05) and choice["waiting"] == []
    assert choice["candidates"] == ["random-s1", "evolution-s0"]  # controls are never candidates
    assert (choice["job"], choice["beats_reference"]) == ("random-s1", False)  # 64.0% < vgg16's best seed, 64.5%
    assert choice["reference_val_accuracy"] == pytest.approx(0.645)
    rows[1]["val_accuracy"] = 0.635
    assert retrain_report.fast_choice(rows)["beats_reference"] is True
    rows[4]["val_accuracy"] = 0.640  # a tie on validation goes to the faster winner
    assert retrain_report.fast_choice(rows)["job"] == "evolution-s0"
    rows[4]["val_accuracy"] = 0.620
    assert retrain_report.fast_choice(rows[2:]) is None  # no vgg16 group
    assert retrain_report.fast_choice(rows[:2] + rows[5:]) is None  # no search winners (issue 12's campaign)
    assert retrain_report.fast_choice(rows[:3])["job"] is None  # the only winner is too slow

    def table(jobs):
        result = {"benchmark": "retrain", "complete": False, "status": "done", "command": "retrain.py",
                  "settings": {"test_split": "PublicTest", "threads": 1}, "jobs": jobs,
                  "groups": retrain_report.groups(jobs), "best": retrain_report.best_job(jobs)}
        (tmp_path / "r.json").write_text(json.dumps(result))
        capsys.readouterr()
        assert retrain.main(["--table", str(tmp_path / "r.json")]) == 0
        return capsys.readouterr().out

    assert "none; no search winner is that fast, so vgg16 stays the fast model." in table(rows[:3])
    assert ("random-s1 (64.00%, 0.220 ms); beats vgg16's best seed (63.50%); its architecture file: the carry "
            "folder's search-random-s1/best_arch.json." in table(rows))
    assert "Fast-model choice" not in table(rows[:2] + rows[5:])
    # a winner not yet timed (the speed block under way): no verdict, and the line says what it waits for
    untimed = [*rows[:4], {**rows[4], "ms_per_face_b1": None}]
    assert retrain_report.fast_choice(untimed)["job"] is None
    assert "waiting for the validation score or timing of evolution-s0." in table(untimed)
    # timings from two machines (a campaign carried in the middle of its speed block) are not compared
    mixed = [{**r, "speed": {"cpu": "CPU A" if r["name"] == "vgg16-s0" else "CPU B"}} for r in rows]
    assert retrain_report.fast_choice(mixed)["cpus"] == ["CPU A", "CPU B"]
    assert "timed on different CPUs (CPU A; CPU B): run the campaign again with --remeasure-speed" in table(mixed)


def test_an_int8_model_refused_by_its_parity_check_is_recorded_and_its_steps_are_done(tmp_path, monkeypatch):
    from nasfer.errors import ModelError

    runner = retrain.Runner(retrain.parse_args(campaign_argv(tmp_path, tmp_path / "work", tmp_path / "out.json",
                                                             "--quantize")))
    job = runner.jobs[-1]
    d = runner.job_dir(job)
    d.mkdir(parents=True)

    def refuse(cfg):
        assert cfg.quantize == "int8" and cfg.split_file == str(runner.split) and cfg.max_accuracy_drop == 0.3
        raise ModelError("int8 quantization refused: validation accuracy 50.00% vs 60.00% for fp32")

    monkeypatch.setattr(retrain, "run_export", refuse)
    runner.quantize(job, d)
    steps = [s for s in runner.steps() if s.job == job.name]
    int8_steps = [s for s in steps if "int8" in s.label]
    assert len(int8_steps) == 4 and all(s.done() for s in int8_steps)  # quantize, 2 evaluations, speed
    assert not any(s.done() for s in steps if "int8" not in s.label)
    row = retrain_report.job_row(runner.spec(job), "test")
    assert row["int8"]["refused"].startswith("int8 quantization refused")

    def other_error(cfg):
        raise ModelError("model file broken")

    monkeypatch.setattr(retrain, "run_export", other_error)
    (d / retrain_report.INT8_REFUSED).unlink()
    with pytest.raises(ModelError, match="broken"):
        runner.quantize(job, d)


@pytest.mark.parametrize("flag, value", [("--threads", "-2"), ("--speed-seconds", "-1"), ("--max-accuracy-drop", "-5"),
                                         ("--max-accuracy-drop", "101"),
                                         ("--search-jobs", "0"), ("--train-jobs", "0"), ("--control-seeds", "-1"),
                                         ("--split-seed", "-1")])
def test_negative_numbers_are_refused_at_the_start(flag, value, tmp_path, capsys):
    """Before: a negative --max-accuracy-drop (or one over 100, which nasfer export refuses) would fail every
    int8 step after hours of training."""
    with pytest.raises(SystemExit):
        retrain.main(["--data", str(tmp_path), "--work-dir", str(tmp_path / "w"), "--out", str(tmp_path / "r.json"),
                      flag, value])
    assert flag.split("-seed")[0] in capsys.readouterr().err and not (tmp_path / "w").exists()


@pytest.mark.slow
def test_searches_run_side_by_side_with_search_jobs(tmp_path, learnable_folder, capsys):
    work, out = tmp_path / "work", tmp_path / "campaign.json"
    argv = campaign_argv(learnable_folder, work, out, "--search-jobs", "2", "--no-publictest")
    argv[argv.index("--controls"):argv.index("--controls") + 2] = []  # the searches' winners only
    assert retrain.main(argv) == 0
    printed = capsys.readouterr().out
    assert "2 searches, 2 at a time" in printed and "search random seed 0: finished" in printed
    result = json.loads(out.read_text())
    assert result["complete"] and {r["name"] for r in result["jobs"]} == {"random-s0", "evolution-s1"}
    for name in ("search-random-s0", "search-evolution-s1"):
        assert json.loads((work / name / "summary.json").read_text())["children"] == 2


@pytest.mark.slow
def test_trainings_run_side_by_side_with_train_jobs_then_their_exports(tmp_path, learnable_folder, capsys):
    work, out = tmp_path / "work", tmp_path / "campaign.json"
    argv = campaign_argv(learnable_folder, work, out, "--train-jobs", "2", "--control-seeds", "0", "1",
                         "--no-publictest")
    argv[argv.index("--searches"):argv.index("--searches") + 3] = []  # the controls only
    assert retrain.main(argv) == 0
    printed = capsys.readouterr().out
    assert "2 trainings, 2 at a time" in printed and "train vgg4-s1: finished" in printed
    result = json.loads(out.read_text())
    assert result["complete"] and {r["name"] for r in result["jobs"]} == {"vgg4-s0", "vgg4-s1"}
    for job in result["jobs"]:
        assert job["val_accuracy"] is not None and (work / f"train-{job['name']}" / "model.onnx").is_file()
    seeds = [json.loads((work / f"train-vgg4-s{s}" / "config.json").read_text())["train"]["seed"] for s in (0, 1)]
    assert seeds == [0, 1]


def test_searches_run_seed_by_seed_so_side_by_side_ones_differ_in_strategy(tmp_path):
    argv = campaign_argv(tmp_path, tmp_path / "work", tmp_path / "out.json")
    at = argv.index("--searches")
    argv[at + 1:at + 3] = ["reinforce:0", "reinforce:1", "random:0", "random:1"]
    steps = retrain.Runner(retrain.parse_args(argv)).steps()
    assert [s.label for s in steps if s.label.startswith("search ")] == [
        "search reinforce seed 0", "search random seed 0", "search reinforce seed 1", "search random seed 1"]


def test_a_search_left_from_other_settings_is_not_taken_as_done(tmp_path):
    import dataclasses

    from nasfer.config import to_dict
    from nasfer.nas.config import SearchConfig

    cfg = SearchConfig(out=str(tmp_path), budget_minutes=120, rungs=("1e@48", "3e@48"))
    (tmp_path / "best_arch.json").write_text("{}")
    summary = tmp_path / "summary.json"
    summary.write_text(json.dumps({"config": to_dict(cfg)}))
    assert retrain.search_done(tmp_path, cfg)
    assert retrain.search_done(tmp_path, dataclasses.replace(cfg, budget_minutes=150))  # resumable change
    assert not retrain.search_done(tmp_path, dataclasses.replace(cfg, rungs=("150s@24", "1e@48")))
    summary.write_text(json.dumps({"config": to_dict(dataclasses.replace(cfg, seed=5))}))
    assert not retrain.search_done(tmp_path, cfg)


@pytest.mark.slow
def test_one_failing_job_skips_its_own_later_steps_and_the_others_go_on(tmp_path, learnable_folder, monkeypatch):
    """Before: the first failing train/export/evaluate stopped the whole campaign (hours of other jobs)."""
    work, out = tmp_path / "work", tmp_path / "campaign.json"
    argv = campaign_argv(learnable_folder, work, out)
    argv[argv.index("--searches"):argv.index("--searches") + 3] = []  # controls only: vgg4 seeds 0 and 1
    argv[argv.index("--controls") + 1:argv.index("--controls") + 2] = ["vgg:4", "--control-seeds", "0", "1"]
    real = retrain.run_train

    def train(cfg, data_cfg):
        if cfg.seed == 0:
            raise RuntimeError("NaN loss")
        return real(cfg, data_cfg)

    monkeypatch.setattr(retrain, "run_train", train)
    with pytest.raises(SystemExit, match=r"1 job\(s\) failed \(train vgg4-s0: RuntimeError: NaN loss\)"):
        retrain.main(argv)
    result = json.loads(out.read_text())
    jobs = {r["name"]: r for r in result["jobs"]}
    assert result["complete"] is False and "finished with failed jobs" in result["status"]
    assert jobs["vgg4-s1"]["val_accuracy"] is not None and jobs["vgg4-s1"]["test_accuracy"] is None  # not yet
    assert not jobs["vgg4-s0"]["complete"] and not (work / "train-vgg4-s0" / "model.onnx").exists()
    monkeypatch.setattr(retrain, "run_train", real)  # fixed: the same command finishes only what is missing
    counts = count_calls(monkeypatch)
    assert retrain.main(argv) == 0 and counts["run_train"] == 1
    result = json.loads(out.read_text())
    assert result["complete"] and all(r["test_accuracy"] is not None for r in result["jobs"])


def test_test_scores_come_after_every_model_is_made_and_validated(tmp_path):
    steps = retrain.Runner(retrain.parse_args(campaign_argv(tmp_path, tmp_path / "w", tmp_path / "o.json",
                                                            "--quantize"))).steps()
    labels = [s.label for s in steps]
    first_test = min(i for i, label in enumerate(labels) if label.endswith(" on test"))
    assert all(not label.startswith(("train ", "export ", "int8 ", "search ")) and not label.endswith(" on val")
               for label in labels[first_test:])


def test_a_sigterm_whose_exception_python_drops_still_stops_the_campaign(tmp_path, learnable_folder, monkeypatch):
    """Before: a SIGTERM that landed while a weakref callback ran raised KeyboardInterrupt there, Python printed
    "Exception ignored in ..." and the campaign went on with its next steps (seen on 2026-12-03 during an int8 step)."""
    import signal
    import weakref

    work, out = tmp_path / "work", tmp_path / "out.json"
    argv = ["--data", str(learnable_folder), "--work-dir", str(work), "--controls", "vgg:4", "--train-flags",
            TRAIN_FLAGS, "--test-split", "test", "--speed-seconds", "0.02", "--out", str(out)]
    counts = count_calls(monkeypatch)
    export = retrain.run_export

    def export_while_sigterm_lands_in_a_weakref_callback(cfg):
        class Thing:
            pass

        thing = Thing()
        ref = weakref.ref(thing, lambda _: signal.raise_signal(signal.SIGTERM))  # noqa: F841
        del thing  # the callback runs; the handler's KeyboardInterrupt is printed and dropped by Python
        return export(cfg)

    monkeypatch.setattr(retrain, "run_export", export_while_sigterm_lands_in_a_weakref_callback)
    dropped = []  # what Python reports as "Exception ignored in ..." goes to sys.unraisablehook
    monkeypatch.setattr(sys, "unraisablehook", lambda unraisable: dropped.append(unraisable.exc_value))
    before = signal.getsignal(signal.SIGTERM)
    with pytest.raises(SystemExit, match=r"interrupted at step 3/.*\(export vgg4-s0\)"):
        retrain.main(argv)
    assert [type(e).__name__ for e in dropped] == ["Terminated"]  # the signal's exception really was dropped
    assert counts["run_evaluate"] == 0 and counts["run_speed"] == 0  # nothing after the stop
    assert signal.getsignal(signal.SIGTERM) == before
    assert json.loads(out.read_text())["status"].startswith("stopped at step 3/")
    monkeypatch.setattr(retrain, "run_export", export)
    assert retrain.main(argv) == 0  # the same command continues
