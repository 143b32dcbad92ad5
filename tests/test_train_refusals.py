"""A refused `nasfer train` leaves the file system as it found it, and says clearly why it refused.

User review: a refused run left its run directory (empty, or with a stale .lock) behind, and a folder
dataset with a class folder that is no emotion trained on the other folders, its images counted as
"unreadable".
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from fixtures_data import write_class_tree
from fixtures_evaluate import save_tiny_checkpoint
from nasfer.cli import main
from nasfer.config import DataConfig, TrainConfig
from nasfer.errors import DataError
from nasfer.runlock import LOCK_FILE, run_lock

TINY = ["--arch", "vgg", "--width", "4", "--epochs", "1", "--batch-size", "8", "--threads", "1"]


@pytest.fixture
def grumpy_folder(tmp_path) -> Path:
    """happy/, sad/ and grumpy/: one class folder that names no canonical emotion."""
    root = tmp_path / "grumpy-data"
    write_class_tree(root, per_class=6, seed=2, classes=("happy", "sad", "grumpy"))
    return root


def train(capsys, *argv) -> tuple[int, str]:
    rc = main(["train", *map(str, argv)])
    err = capsys.readouterr().err
    assert "Traceback" not in err
    return rc, err


# ---------------------------------------------------------------------------- the run directory


def test_a_missing_dataset_is_refused_before_the_run_directory_is_made(tmp_path, capsys):
    rc, err = train(capsys, "--data", tmp_path / "nonexistent", "--out", tmp_path / "r" / "z", "--epochs", "1")
    assert rc == 2 and "no such file or folder" in err
    assert not (tmp_path / "r").exists()  # neither the run directory nor its parent


@pytest.mark.parametrize("argv,message", [
    (["--init-from", "default", "--width", "16"], "--width with --init-from"),
    (["--freeze-epochs", "2"], "needs --init-from"),
    (["--split-file", "missing.json"], "split file not found"),
    (["--init-from", "missing.pt"], "--init-from checkpoint not found"),
    # before: accepted and without effect
    (["--backbone-lr-mult", "0.5"], "--backbone-lr-mult sets the learning rate of a pretrained backbone: it needs --init-from"),
    (["--distill-alpha", "0.3"], "--distill-alpha weighs a teacher's soft targets: it needs --teacher"),
    (["--distill-temperature", "2"], "--distill-temperature weighs a teacher's soft targets: it needs --teacher"),
    (["--split-file", "missing.json", "--limit", "5"], "--limit with --split-file"),  # before: --limit ignored
])
def test_flags_that_cannot_start_a_run_make_no_directory(tmp_path, capsys, learnable_folder, argv, message):
    rc, err = train(capsys, "--data", learnable_folder, "--out", tmp_path / "r" / "w", *argv)
    assert rc == 2 and message in err and not (tmp_path / "r").exists()


def test_an_out_that_is_a_file_is_refused(tmp_path, capsys, learnable_folder):
    (tmp_path / "taken").write_text("mine")
    rc, err = train(capsys, "--data", learnable_folder, "--out", tmp_path / "taken", *TINY)
    assert rc == 2 and "a file is there" in err and (tmp_path / "taken").read_text() == "mine"


@pytest.mark.parametrize("command", ["train", "crossval"])
def test_an_out_below_a_file_is_refused_before_reading_the_data(tmp_path, capsys, learnable_folder, command):
    """Before: `nasfer train --out afile/run` read the data, then failed making the folder with a traceback
    (NotADirectoryError)."""
    (tmp_path / "taken").write_text("mine")
    rc = main([command, "--data", str(learnable_folder), "--out", str(tmp_path / "taken" / "run"), *TINY])
    err = capsys.readouterr().err
    assert rc == 2 and "Traceback" not in err and (tmp_path / "taken").read_text() == "mine"
    assert f"--out {tmp_path / 'taken' / 'run'}: {tmp_path / 'taken'} is a file;" in err


def test_any_refusal_of_the_file_system_is_one_line(tmp_path, capsys, tiny_onnx, monkeypatch):
    """An OSError the commands do not check for (here the final rename of --csv is refused, as on a file system
    that went read-only) is one line plus where the records are, not a traceback."""
    import os

    import numpy as np

    from fixtures_data import pattern_image, png_bytes

    (tmp_path / "a.png").write_bytes(png_bytes(pattern_image(3, np.random.default_rng(0))))
    results = tmp_path / "r.csv"
    real = os.replace

    def refused(src, dst, *args, **kwargs):
        if str(dst) == str(results):
            raise PermissionError(13, "Permission denied", str(src))
        return real(src, dst, *args, **kwargs)

    monkeypatch.setattr(os, "replace", refused)
    rc = main(["predict", str(tmp_path / "a.png"), "--detector", "none", "--model", str(tiny_onnx),
               "--csv", str(results)])
    err = capsys.readouterr().err
    assert rc == 2 and "Traceback" not in err
    assert err.splitlines() == [f"nasfer predict: error: {results}: Permission denied",
                                f"nasfer predict: {results} was not created; what was written before the stop is "
                                f"in {tmp_path / 'r.csv.partial'}"]


def test_a_refusal_found_while_reading_removes_the_directory_and_its_lock(tmp_path, capsys, grumpy_folder):
    rc, err = train(capsys, "--data", grumpy_folder, "--out", tmp_path / "r" / "g", *TINY)
    assert rc == 2 and "'grumpy'" in err
    assert not (tmp_path / "r").exists()


def test_a_split_file_of_other_images_is_refused_without_leaving_the_directory(tmp_path, capsys, learnable_folder):
    split = tmp_path / "other.json"
    split.write_text(json.dumps({"splits": {"happy/elsewhere.png": "train"}}))
    rc, err = train(capsys, "--data", learnable_folder, "--split-file", split, "--out", tmp_path / "r" / "s", *TINY)
    assert rc == 2 and "error:" in err and not (tmp_path / "r").exists()


@pytest.mark.parametrize("role", ["trian", 5, "Training", "Val"])
def test_a_split_file_with_an_unknown_role_is_refused_naming_the_file_key_and_roles(tmp_path, capsys,
                                                                                    learnable_folder, role):
    """Before: "trian" (or "Training", "Val": roles are lower case) was accepted, those images neither trained on
    nor scored, and 5 got a message naming neither the image nor the roles."""
    split = tmp_path / "typo.json"
    split.write_text(json.dumps({"splits": {"happy/a.png": "train", "happy/b.png": role, "sad/c.png": "bad"}}))
    rc, err = train(capsys, "--data", learnable_folder, "--split-file", split, "--out", tmp_path / "r" / "s", *TINY)
    assert rc == 2 and not (tmp_path / "r").exists() and len(err.strip().splitlines()) == 1
    assert f"{split}: happy/b.png has role {role!r}" in err and "train, val, test, unused" in err


def test_a_split_file_holds_every_role_a_run_writes(tmp_path):
    """Ours (train, val, test, unused) and the dataset's own names of the splits outside Training."""
    import numpy as np

    from nasfer.data.splits import read_split_file, write_split_file

    roles = ["train", "val", "test", "unused", "PublicTest", "PrivateTest", "Test", "testing", "all"]
    keys = [f"k{i}.png" for i in range(len(roles))]
    write_split_file(tmp_path / "splits.json", np.asarray(keys), np.asarray(roles), data="d")
    assert read_split_file(tmp_path / "splits.json") == dict(zip(keys, roles))


@pytest.mark.parametrize("label_set", ["canonical", "folders"])
def test_a_training_split_of_one_class_is_refused_before_any_epoch(tmp_path, capsys, label_set):
    """Before: trained silently, a "classifier" that can only ever answer happy."""
    write_class_tree(tmp_path / "d", per_class=20, classes=("happy",))
    rc = main(["train", "--data", str(tmp_path / "d"), "--label-set", label_set, "--out", str(tmp_path / "r" / "o"),
               *TINY])
    out, err = capsys.readouterr()
    assert rc == 2 and "Traceback" not in err and "epoch" not in out.lower() and not (tmp_path / "r").exists()
    assert "training split has one class (happy, " in err and "at least two classes in its training images" in err


def test_an_existing_run_directory_survives_a_refusal(tmp_path, capsys, grumpy_folder):
    run = tmp_path / "run"
    run.mkdir()
    (run / "notes.txt").write_text("keep me")
    rc, _ = train(capsys, "--data", grumpy_folder, "--out", run, *TINY)
    assert rc == 2 and sorted(p.name for p in run.iterdir()) == ["notes.txt"]  # the lock it made is gone too
    (run / LOCK_FILE).write_text("123 training run\n")  # a lock file left by an earlier run stays
    rc, _ = train(capsys, "--data", grumpy_folder, "--out", run, *TINY)
    assert rc == 2 and sorted(p.name for p in run.iterdir()) == [LOCK_FILE, "notes.txt"]


def test_a_resumed_run_refused_keeps_its_checkpoints(tmp_path, capsys, learnable_folder):
    from nasfer.train import fit

    run = fit(TrainConfig(arch="vgg", width=4, epochs=1, batch_size=32, out=str(tmp_path / "run"), threads=1),
              DataConfig(data=str(learnable_folder)), progress=False)
    before = sorted(p.name for p in run.iterdir())
    rc, err = train(capsys, "--data", learnable_folder, "--out", run, "--arch", "vgg", "--width", "8",
                    "--epochs", "2", "--batch-size", "32", "--threads", "1")
    assert rc == 2 and "holds a different model" in err
    assert sorted(p.name for p in run.iterdir()) == before


def test_run_lock_clean_up_removes_only_what_it_made(tmp_path):
    with pytest.raises(RuntimeError):
        with run_lock(tmp_path / "a" / "b", clean_up=True):
            raise RuntimeError("refused")
    assert not (tmp_path / "a").exists()

    with pytest.raises(RuntimeError):  # files written inside the block: the folder stays, the lock goes
        with run_lock(tmp_path / "c", clean_up=True):
            (tmp_path / "c" / "last.pt").write_bytes(b"x")
            raise RuntimeError("crashed")
    assert sorted(os.listdir(tmp_path / "c")) == ["last.pt"]

    with run_lock(tmp_path / "d", clean_up=True):  # no error: everything stays
        pass
    assert (tmp_path / "d" / LOCK_FILE).is_file()

    with pytest.raises(RuntimeError):  # without clean_up, as before
        with run_lock(tmp_path / "e"):
            raise RuntimeError("refused")
    assert (tmp_path / "e" / LOCK_FILE).is_file()


# ---------------------------------------------------------------------------- class folders that are no emotion


def test_a_class_folder_that_is_no_emotion_is_refused_by_name(tmp_path, capsys, grumpy_folder):
    (grumpy_folder / "Bored").mkdir()
    (grumpy_folder / "Bored" / "x.png").write_bytes((grumpy_folder / "happy" / "img_0000.png").read_bytes())
    (grumpy_folder / "happy" / "broken.png").write_bytes(b"\x89PNG garbage")
    rc, err = train(capsys, "--data", grumpy_folder, "--out", tmp_path / "o", *TINY)
    assert rc == 2
    assert "class folders 'Bored' (1 image), 'grumpy' (6 images) are not canonical emotion labels" in err
    assert "--label-set folders" in err and "unreadable" not in err


def test_folder_labels_train_on_every_folder_and_unreadable_files_are_still_skipped(tmp_path, capsys,
                                                                                     grumpy_folder):
    (grumpy_folder / "happy" / "broken.png").write_bytes(b"\x89PNG garbage")
    rc = main(["train", "--data", str(grumpy_folder), "--label-set", "folders", "--out", str(tmp_path / "o"), *TINY])
    out = capsys.readouterr().out
    assert rc == 0 and "skipped 1 unreadable files/rows" in out and "broken.png" in out
    config = json.loads((tmp_path / "o" / "config.json").read_text())
    assert config["labels"] == ["grumpy", "happy", "sad"]


def test_canonical_folders_with_synonyms_and_contempt_still_read(tmp_path):
    from nasfer.data import read_dataset

    write_class_tree(tmp_path / "d", per_class=2, classes=("Anger", "happiness", "contempt", "neutral"))
    data = read_dataset(tmp_path / "d")
    assert len(data) == 6 and any("'contempt' images excluded" in n for n in data.notes)
    write_class_tree(tmp_path / "d", per_class=1, classes=("grumpy",))
    with pytest.raises(DataError, match="class folder 'grumpy' \\(1 image\\)"):
        read_dataset(tmp_path / "d", strict=True)


def test_evaluate_refuses_such_a_folder_for_a_canonical_model_and_scores_a_folder_label_model(
        tmp_path, capsys, grumpy_folder):
    canonical = save_tiny_checkpoint(tmp_path / "canonical.pt")
    assert main(["evaluate", "--data", str(grumpy_folder), "--model", str(canonical)]) == 2
    err = capsys.readouterr().err
    assert "'grumpy' (6 images)" in err and "Traceback" not in err
    own = save_tiny_checkpoint(tmp_path / "own.pt", labels=("grumpy", "happy", "sad"))
    assert main(["evaluate", "--data", str(grumpy_folder), "--model", str(own), "--json", "-"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["n"] == 18 and report["labels"] == ["grumpy", "happy", "sad"]


def test_crossval_refuses_such_a_folder_without_folder_labels(tmp_path, capsys, grumpy_folder):
    rc = main(["crossval", "--data", str(grumpy_folder), "--folds", "2", "--out", str(tmp_path / "cv"), *TINY])
    err = capsys.readouterr().err
    assert rc == 2 and "'grumpy' (6 images)" in err and "--label-set folders" in err and "Traceback" not in err


def test_a_new_run_is_not_written_into_a_folder_of_other_files(tmp_path, capsys, learnable_folder):
    """Before: `--out` onto a folder holding the user's own best.pt and config.json said "(new run)" and replaced them;
    a search's folder got a training run's config.json."""
    mine = tmp_path / "mine"
    mine.mkdir()
    (mine / "best.pt").write_bytes(b"my own model")
    (mine / "notes.txt").write_text("keep me")
    rc, err = train(capsys, "--data", learnable_folder, "--out", mine, *TINY)
    assert rc == 2 and "which a training run does not write" in err and "notes.txt" in err
    assert (mine / "best.pt").read_bytes() == b"my own model"

    search = tmp_path / "search"
    search.mkdir()
    (search / "config.json").write_text(json.dumps({"strategy": "random", "budget_minutes": 1}))
    rc, err = train(capsys, "--data", learnable_folder, "--out", search, *TINY)
    assert rc == 2 and "not a training run's" in err
    assert json.loads((search / "config.json").read_text())["strategy"] == "random"


def test_a_search_is_not_written_into_a_training_run(tmp_path, capsys, learnable_folder):
    run = tmp_path / "run"
    assert main(["train", "--data", str(learnable_folder), "--out", str(run), *TINY]) == 0
    capsys.readouterr()
    before = (run / "config.json").read_text()
    rc = main(["search", "--data", str(learnable_folder), "--out", str(run), "--budget-minutes", "0.05"])
    err = capsys.readouterr().err
    assert rc == 2 and "nothing was done" in err and "Traceback" not in err
    assert (run / "config.json").read_text() == before


@pytest.mark.parametrize("argv, message", [
    # before: a traceback from the first .to(device) (AssertionError, RuntimeError), after the data was read
    (["--device", "mps"], "--device mps: nasfer trains on cpu or cuda"),
    (["--device", "banana"], "--device banana: not a torch device"),
    # before: TypeError: ensemble() missing 1 required positional argument
    (["--arch", "ensemble"], "--arch ensemble: an ensemble is made from trained checkpoints"),
])
def test_a_device_or_architecture_that_cannot_train_is_one_line(tmp_path, capsys, learnable_folder, argv, message):
    rc, err = train(capsys, "--data", learnable_folder, "--out", tmp_path / "run", *TINY, *argv)
    assert rc == 2 and message in err and not (tmp_path / "run").exists()


def test_cuda_without_a_gpu_is_one_line(tmp_path, capsys, learnable_folder):
    import torch

    if torch.cuda.is_available():
        pytest.skip("this machine has a CUDA GPU: there the flag is right")
    rc, err = train(capsys, "--data", learnable_folder, "--out", tmp_path / "run", *TINY, "--device", "cuda")
    assert rc == 2 and "sees no CUDA GPU" in err and not (tmp_path / "run").exists()


def test_an_init_from_that_is_a_run_folder_or_a_shipped_onnx_name_says_what_to_give(tmp_path, capsys, learnable_folder):
    """User review: `--init-from runs/m1` (the run folder) and `--init-from fast` (a shipped model, ONNX only)
    were both "checkpoint not found", though the folder exists and `fast` is a model name the other commands take."""
    run = tmp_path / "runs" / "m1"
    run.mkdir(parents=True)
    (run / "best.pt").write_bytes(b"not read")
    rc, err = train(capsys, "--data", learnable_folder, "--out", tmp_path / "o1", "--init-from", run)
    assert rc == 2 and f"{run} is a folder" in err and f"--init-from {run / 'best.pt'}" in err
    rc, err = train(capsys, "--data", learnable_folder, "--out", tmp_path / "o2", "--init-from", "fast")
    assert rc == 2 and "shipped model 'fast' is an ONNX graph" in err and "--init-from default" in err
    assert not (tmp_path / "o1").exists() and not (tmp_path / "o2").exists()


def test_a_run_directory_inside_the_dataset_folder_is_refused(tmp_path, capsys):
    """User review: `--out my_faces/run1` trained and wrote run1/curves.png into the dataset, which the next run
    read as a class 'run1' (and the resumed run as a changed dataset)."""
    data = tmp_path / "faces"
    write_class_tree(data, per_class=6, classes=("happy", "sad"))
    before = sorted(p.relative_to(data) for p in data.rglob("*"))
    rc, err = train(capsys, "--data", data, "--out", data / "run1", "--label-set", "folders", *TINY)
    assert rc == 2 and "is inside the dataset folder" in err
    assert sorted(p.relative_to(data) for p in data.rglob("*")) == before
