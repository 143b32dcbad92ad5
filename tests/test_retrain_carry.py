"""benchmarks/retrain.py --carry: a campaign continues on a new machine from the small files it carried."""

from __future__ import annotations

import json
import shutil
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))

import retrain  # noqa: E402
import retrain_carry  # noqa: E402
from test_retrain_runner import CALLS, campaign_argv, count_calls  # noqa: E402


@pytest.mark.slow
def test_a_campaign_continues_from_its_carried_files_when_the_work_directory_is_gone(
        tmp_path, learnable_folder, monkeypatch):
    """Before: a new machine (the work directory lost) meant every search and training again from the start."""
    work, carried, out = tmp_path / "work", tmp_path / "repo" / "carry", tmp_path / "results" / "campaign.json"
    argv = campaign_argv(learnable_folder, work, out, "--carry", str(carried))

    # stopped during the second search, after the split and the first search
    count_calls(monkeypatch, fail={"run_search": 2})
    with pytest.raises(SystemExit, match="interrupted at step 3/"):
        retrain.main(argv)
    assert (carried / "campaign.json").is_file() and (carried / "splits.json").is_file()
    first_search = carried / "search-random-s0"
    assert {"summary.json", "best_arch.json", "search_state.pt", "search_log.jsonl"} <= {
        p.name for p in first_search.iterdir()}

    shutil.rmtree(work)  # the machine is gone; the carried folder was committed
    counts = count_calls(monkeypatch)
    assert retrain.main(argv) == 0
    assert counts == {"run_search": 1, "run_train": 3, "run_export": 3, "run_evaluate": 6, "run_speed": 3}
    result = json.loads(out.read_text())
    assert result["complete"]
    trained = sorted(carried.glob("train-*"))
    assert [p.name for p in trained] == ["train-evolution-s1", "train-random-s0", "train-vgg4-s0"]
    for folder in trained:  # the exported models and their reports, never the checkpoints
        names = {p.name for p in folder.iterdir()}
        assert {"model.onnx", "model.json", "history.json", "config.json", "eval-fp32-val.json",
                "eval-fp32-test.json", "speed-fp32.json"} <= names
        assert not any(name.endswith(".pt") for name in names)

    shutil.rmtree(work)  # another new machine: nothing is trained, searched, scored or timed again
    counts = count_calls(monkeypatch)
    assert retrain.main(argv) == 0
    assert counts == dict.fromkeys(CALLS, 0)
    again = json.loads(out.read_text())
    assert again["complete"]
    for before, after in zip(result["jobs"], again["jobs"]):
        assert (after["name"], after["val_accuracy"], after["test_accuracy"], after["ms_per_face_b1"]) == (
            before["name"], before["val_accuracy"], before["test_accuracy"], before["ms_per_face_b1"])


def test_only_small_finished_parts_are_carried_and_restore_never_overwrites(tmp_path):
    work, carried = tmp_path / "work", tmp_path / "carry"
    files = {"campaign.json": "{}", "splits.json": "{}", "notes.log": "x", ".lock": "",
             "search-random-s0/search_state.pt": "state", "search-random-s0/search_log.jsonl": "{}\n",
             "search-random-s0/summary.json.tmp": "half",
             "train-vgg4-s0/history.json": "[]", "train-vgg4-s0/last.pt": "big", "train-vgg4-s0/best.pt": "big",
             "train-vgg4-s0/model.json": "{}", "train-vgg4-s0/model.onnx": "onnx",
             "train-vgg4-s0/eval-fp32-val.json": "{}", "train-vgg4-s0/speed-fp32.json": "{}",
             # the run's copy of the shared split, per-image test predictions, quantize's temporary graph
             "train-vgg4-s0/splits.json": "{}", "train-vgg4-s0/test.json": "{}",
             "train-vgg4-s0/model-int8.int8.tmp.onnx": "half",
             # s1: still training: its checkpoints are carried (it resumes on the next machine), not its split copy
             "train-vgg4-s1/history.json": "[]", "train-vgg4-s1/last.pt": "ckpt", "train-vgg4-s1/best.pt": "best",
             "train-vgg4-s1/config.json": "{}", "train-vgg4-s1/splits.json": "{}",
             "train-vgg4-s2/config.json": "{}", "train-vgg4-s2/splits.json": "{}"}  # s2: no epoch finished yet
    for name, text in files.items():
        (work / name).parent.mkdir(parents=True, exist_ok=True)
        (work / name).write_text(text)
    assert {str(p) for p in retrain_carry.carried_files(work)} == {
        "campaign.json", "splits.json", "search-random-s0/search_state.pt", "search-random-s0/search_log.jsonl",
        "train-vgg4-s0/history.json", "train-vgg4-s0/model.json", "train-vgg4-s0/model.onnx",
        "train-vgg4-s0/eval-fp32-val.json", "train-vgg4-s0/speed-fp32.json",
        "train-vgg4-s1/history.json", "train-vgg4-s1/last.pt", "train-vgg4-s1/best.pt", "train-vgg4-s1/config.json"}
    assert retrain_carry.save(work, carried) == 13
    assert retrain_carry.save(work, carried) == 0  # unchanged files are not copied again
    (work / "train-vgg4-s1" / "last.pt").write_text("next epoch")
    assert retrain_carry.save(work, carried) == 1 and (carried / "train-vgg4-s1" / "last.pt").read_text() == "next epoch"
    (work / "search-random-s0" / "search_state.pt").write_text("later state")
    assert retrain_carry.save(work, carried, only=[work / "search-random-s0"]) == 1
    assert (carried / "search-random-s0" / "search_state.pt").read_text() == "later state"

    fresh = tmp_path / "fresh"
    (fresh / "search-random-s0").mkdir(parents=True)
    (fresh / "search-random-s0" / "search_state.pt").write_text("newer here")
    restored = {str(p) for p in retrain_carry.restore(carried, fresh)}
    assert "search-random-s0/search_state.pt" not in restored and len(restored) == 12
    assert (fresh / "search-random-s0" / "search_state.pt").read_text() == "newer here"
    assert (fresh / "train-vgg4-s0" / "model.onnx").read_text() == "onnx"
    assert (fresh / "train-vgg4-s1" / "last.pt").read_text() == "next epoch"
    assert retrain_carry.restore(tmp_path / "no-such-folder", fresh) == []

    # s1 exports its model: its card is carried, its carried checkpoints are removed (the work directory keeps them)
    (work / "train-vgg4-s1" / "model.json").write_text("{}")
    assert retrain_carry.save(work, carried) == 3
    assert sorted(p.name for p in (carried / "train-vgg4-s1").iterdir()) == ["config.json", "history.json", "model.json"]
    assert (work / "train-vgg4-s1" / "last.pt").is_file()


def test_another_campaigns_carry_folder_is_refused_and_left_as_it_was(tmp_path, monkeypatch):
    """Before (a user's mistake, found in review): the other campaign's carried trainings were taken as this
    campaign's finished jobs (a 2-epoch model on another split reported as the best), then its carried files
    were overwritten with this campaign's."""
    import retrain_report

    carried = tmp_path / "carry"
    other = campaign_argv(tmp_path, tmp_path / "work", tmp_path / "other.json", "--split-seed", "5")
    settings = retrain.Runner(retrain.parse_args(other)).settings()
    retrain_report.write_json(carried / "campaign.json", {"command": "the other one", "settings": settings})
    (carried / "train-vgg4-s0").mkdir()
    (carried / "train-vgg4-s0" / "model.json").write_text("{}")
    before = {p: p.read_bytes() for p in carried.rglob("*") if p.is_file()}
    counts = count_calls(monkeypatch)
    argv = campaign_argv(tmp_path, tmp_path / "work", tmp_path / "out.json", "--carry", str(carried))
    with pytest.raises(SystemExit, match=r"carry holds a campaign with other settings \(split_seed: 5 -> 0\); run it "
                                         r"with its own command \(the other one\) or give another --carry folder"):
        retrain.main(argv)
    assert counts == dict.fromkeys(CALLS, 0) and not (tmp_path / "work" / "train-vgg4-s0").exists()
    assert {p: p.read_bytes() for p in carried.rglob("*") if p.is_file() and p.name != ".lock"} == before


def test_a_carry_folder_that_is_a_file_is_refused_before_any_work(tmp_path, monkeypatch):
    """Before: the split was drawn, then a FileExistsError traceback (twice: again in the stop path)."""
    carried = tmp_path / "carry"
    carried.write_text("not a folder")
    counts = count_calls(monkeypatch)
    argv = campaign_argv(tmp_path, tmp_path / "work", tmp_path / "out.json", "--carry", str(carried))
    with pytest.raises(SystemExit, match=f"--carry {carried}: is not a folder"):
        retrain.main(argv)
    assert counts == dict.fromkeys(CALLS, 0) and not (tmp_path / "work").exists()
    with pytest.raises(ValueError, match="cannot write there"):  # a folder that cannot be made (root may write anywhere)
        retrain_carry.check_folder(carried / "inside")


def test_a_failed_copy_is_logged_and_the_campaign_goes_on(tmp_path, monkeypatch):
    work, carried = tmp_path / "work", tmp_path / "carry"
    (work / "search-random-s0").mkdir(parents=True)
    (work / "search-random-s0" / "search_state.pt").write_text("state")

    def full_disk(src, dst):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(retrain_carry, "_copy", full_disk)
    logged = []
    retrain_carry.Carrier(work, carried, logged.append).save()  # no exception: the stop path still says how to go on
    assert logged == [f"--carry {carried}: not updated: OSError: [Errno 28] No space left on device"]


def test_a_running_search_is_carried_state_first_and_while_it_runs(tmp_path, monkeypatch):
    """The state is copied before the log: a resumed search cuts its log back to the jobs its state counts,
    which needs a log at least as long as the state says (copied log-first, a job written in between would
    be missing from the log)."""
    import time

    work, carried = tmp_path / "work", tmp_path / "carry"
    search = work / "search-reinforce-s0"
    search.mkdir(parents=True)
    for name in ("search_log.jsonl", "latency_cache.json", "search_state.pt", "config.json"):
        (search / name).write_text(name)
    order = []
    copy = retrain_carry._copy
    monkeypatch.setattr(retrain_carry, "_copy", lambda src, dst: (order.append(src.name), copy(src, dst)))
    retrain_carry.save(work, carried)
    assert order[0] == "search_state.pt" and order.index("search_state.pt") < order.index("search_log.jsonl")

    logged = []
    carrier = retrain_carry.Carrier(work, carried, logged.append)
    with carrier.every(0.05):
        (search / "search_state.pt").write_text("job 2")
        deadline = time.monotonic() + 10
        while (carried / search.name / "search_state.pt").read_text() != "job 2" and time.monotonic() < deadline:
            time.sleep(0.02)
    assert (carried / search.name / "search_state.pt").read_text() == "job 2"
    assert logged and logged[0].startswith("carried 1 changed files")
    with retrain_carry.Carrier(work, None).every(0.01):  # without --carry: nothing runs, nothing is written
        time.sleep(0.05)


@pytest.mark.slow
def test_a_training_cut_off_mid_way_resumes_on_the_next_machine_from_its_carried_checkpoint(
        tmp_path, learnable_folder, monkeypatch):
    """Before: only exported trainings were carried, so a training longer than a session (hours here) started
    again from its first epoch on every new machine and never finished."""
    from nasfer.train import Trainer

    work, carried, out = tmp_path / "work", tmp_path / "carry", tmp_path / "campaign.json"
    argv = ["--data", str(learnable_folder), "--work-dir", str(work), "--controls", "vgg:4", "--train-flags",
            "--epochs 2 --batch-size 32 --precision fp32 --threads 1", "--test-split", "test", "--speed-seconds",
            "0.02", "--carry", str(carried), "--out", str(out)]
    original, epochs = Trainer.validate, []

    def killed_in_the_second_epoch(self):
        epochs.append(len(self.history) + 1)
        if epochs == [1, 2]:
            raise KeyboardInterrupt  # the session ends during epoch 2, after epoch 1's checkpoint
        return original(self)

    monkeypatch.setattr(Trainer, "validate", killed_in_the_second_epoch)
    with pytest.raises(SystemExit, match="interrupted at step 2/"):
        retrain.main(argv)
    run = carried / "train-vgg4-s0"
    assert {"last.pt", "best.pt", "config.json", "history.json"} <= {p.name for p in run.iterdir()}
    first_epoch = json.loads((run / "history.json").read_text())
    assert [h["epoch"] for h in first_epoch] == [1]

    shutil.rmtree(work)  # a new machine
    assert retrain.main(argv) == 0
    assert epochs == [1, 2, 2]  # epoch 1 was not trained again
    history = json.loads((work / "train-vgg4-s0" / "history.json").read_text())
    assert [h["epoch"] for h in history] == [1, 2] and history[0] == first_epoch[0]
    names = {p.name for p in run.iterdir()}  # exported: the carried checkpoints are gone, the model is there
    assert "model.onnx" in names and not any(name.endswith(".pt") for name in names)


def keep_weights_argv(data: Path, work: Path, carried: Path, out: Path, *extra: str) -> list[str]:
    return ["--data", str(data), "--work-dir", str(work), "--controls", "vgg:4", "--control-seeds", "0", "1",
            "--train-flags", "--epochs 1 --batch-size 32 --precision fp32 --threads 1", "--test-split", "test",
            "--speed-seconds", "0.02", "--carry", str(carried), "--out", str(out), *extra]


@pytest.mark.slow
def test_keep_weights_carries_each_exported_trainings_weights_past_its_checkpoints(
        tmp_path, learnable_folder, monkeypatch, capsys):
    """Before: an exported training's checkpoints left the carry folder, so a member trained over several
    machines had no weights left on the next one to join an ensemble with (issue 13's members: only the
    exported ONNX graph survived). With --keep-weights its best.pt, without training state, stays, with the
    run's splits.json that `nasfer ensemble --select greedy` checks."""
    import torch

    from nasfer.checkpoint import load_checkpoint
    from nasfer.cli import main as nasfer

    work, carried, out = tmp_path / "work", tmp_path / "carry", tmp_path / "campaign.json"
    argv = keep_weights_argv(learnable_folder, work, carried, out)
    assert retrain.main(argv) == 0  # a campaign started without the flag ...
    assert not list(carried.glob("train-*/weights.pt"))
    counts = count_calls(monkeypatch)
    assert retrain.main([*argv, "--keep-weights"]) == 0  # ... is run again with it, on the machine that trained it
    assert counts == dict.fromkeys(CALLS, 0)  # nothing trained, exported, scored or timed again
    for seed in (0, 1):
        run, kept = work / f"train-vgg4-s{seed}", carried / f"train-vgg4-s{seed}"
        best, weights = load_checkpoint(run / "best.pt"), load_checkpoint(kept / "weights.pt")
        assert not {"optimizer", "scheduler", "ema_state_dict"} & set(weights)
        assert weights["state_dict"].keys() == best["state_dict"].keys()
        assert all(torch.equal(weights["state_dict"][k], v) for k, v in best["state_dict"].items())
        names = {p.name for p in kept.iterdir()}
        assert {"weights.pt", "splits.json", "model.onnx"} <= names and not {"best.pt", "last.pt"} & names

    shutil.rmtree(work)  # a new machine: the weights come back with the models, nothing is redone
    counts = count_calls(monkeypatch)
    assert retrain.main([*argv, "--keep-weights"]) == 0
    assert counts == dict.fromkeys(CALLS, 0)
    assert (work / "train-vgg4-s0" / "weights.pt").read_bytes() == (carried / "train-vgg4-s0" / "weights.pt").read_bytes()
    members = [str(carried / f"train-vgg4-s{seed}" / "weights.pt") for seed in (0, 1)]
    capsys.readouterr()
    nasfer(["ensemble", "--checkpoints", *members, "--select", "greedy", "--data", str(learnable_folder),
            "--split-file", str(carried / "splits.json"), "--rounds", "3", "--out", str(tmp_path / "ensemble.pt")])
    said = capsys.readouterr()
    # both members accepted and scored on validation (one-epoch members at chance may leave one picked alone)
    assert all(f"{m}: validation accuracy" in said.out for m in members), said.err
    assert "splits.json" not in said.err


@pytest.mark.slow
def test_keep_weights_are_written_before_the_export_drops_the_carried_checkpoints(
        tmp_path, learnable_folder, monkeypatch):
    """Before (as first written): the weights step ran after the export, and the carry folder dropped the
    checkpoints as soon as the model was exported, so a stop in between, on a machine that then went, lost
    the member's weights everywhere."""
    work, carried, out = tmp_path / "work", tmp_path / "carry", tmp_path / "campaign.json"
    argv = keep_weights_argv(learnable_folder, work, carried, out, "--keep-weights")
    original, calls = retrain_carry.keep_weights, []

    def stopped_once(run_dir, log):
        calls.append(run_dir)
        if len(calls) == 1:
            raise KeyboardInterrupt  # the session ends while the first weights are written
        return original(run_dir, log)

    monkeypatch.setattr(retrain.carry, "keep_weights", stopped_once)
    with pytest.raises(SystemExit, match="interrupted"):
        retrain.main(argv)
    assert {"best.pt", "last.pt"} <= {p.name for p in (carried / "train-vgg4-s0").iterdir()}  # still carried
    shutil.rmtree(work)  # the machine went
    assert retrain.main(argv) == 0
    assert all((carried / f"train-vgg4-s{seed}" / "weights.pt").is_file() for seed in (0, 1))
    assert not list(carried.glob("train-*/weights-missing.json"))


def test_keep_weights_without_the_runs_checkpoint_says_so_in_a_carried_note(tmp_path):
    run = tmp_path / "train-vgg4-s0"
    run.mkdir()
    lines = []
    assert not retrain_carry.weights_kept(run)
    retrain_carry.keep_weights(run, lines.append)
    assert not (run / "weights.pt").exists()
    assert len(lines) == 1 and "best.pt was not on the machine" in lines[0]
    assert "went with another machine" in json.loads((run / "weights-missing.json").read_text())["missing"]
    assert retrain_carry.weights_kept(run)  # done: the campaign does not try again on every run
    (run / "model.json").write_text("{}")
    (run / "splits.json").write_text("{}")  # no weights: the split's copy stays behind
    assert {p.name for p in retrain_carry.carried_files(tmp_path)} == {"model.json", "weights-missing.json"}


def test_git_commits_what_the_carry_folder_holds():
    """Before: .gitignore's `*.pt` kept a carried training's checkpoints out of the commit, so the next machine
    would have started that training from its first epoch (found when committing the issue-11 folder)."""
    import subprocess

    root = Path(__file__).resolve().parents[1]
    if not (root / ".git").exists():
        pytest.fail("this test reads the repository's .gitignore through git: run it in a git checkout")
    carried = ["benchmarks/campaigns/x/train-vgg4-s0/last.pt", "benchmarks/campaigns/x/train-vgg4-s0/best.pt",
               "benchmarks/campaigns/x/train-vgg4-s0/weights.pt", "benchmarks/campaigns/x/search-random-s0/search_state.pt"]
    ignored = subprocess.run(["git", "check-ignore", "--no-index", *carried], cwd=root, capture_output=True, text=True)
    assert ignored.stdout.split() == []  # none of them ignored
    lock = subprocess.run(["git", "check-ignore", "--no-index", "benchmarks/campaigns/x/.lock"], cwd=root,
                          capture_output=True, text=True)
    assert lock.stdout.strip() == "benchmarks/campaigns/x/.lock"
