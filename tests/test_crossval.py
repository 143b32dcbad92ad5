"""Subject-independent cross-validation: folds by subject, every image tested once, the crossval report."""

import json
from pathlib import Path

import numpy as np
import pytest

from fixtures_data import pattern_image, png_bytes
from nasfer.config import DataConfig, TrainConfig
from nasfer.crossval import CrossvalConfig, fold_roles, run_crossval
from nasfer.data import read_dataset
from nasfer.data.splits import group_kfold, sample_keys, subject_ids
from nasfer.errors import DataError

CLASSES = ("anger", "contempt", "happy")


@pytest.fixture(scope="module")
def ck_style(tmp_path_factory) -> Path:
    """CK+-style folder: <class>/S<subject>_<sequence>_<frame>.png, 6 subjects, 3 classes, 3 frames each."""
    root = tmp_path_factory.mktemp("ck") / "CK+48"
    rng = np.random.default_rng(0)
    for i, name in enumerate(CLASSES):
        (root / name).mkdir(parents=True)
        for subject in range(6):
            for frame in range(3):
                image = pattern_image(i * 2, rng)  # bars far apart: learnable in a couple of epochs
                (root / name / f"S{10 + subject:03d}_00{i}_{frame:08d}.png").write_bytes(png_bytes(image))
    return root


def test_subject_ids_from_ckplus_names_and_a_clear_error():
    sources = np.array(["/d/CK+48:anger/S005_001_00000011.png", "x.zip:happy/S130_009_00000001.png"])
    assert subject_ids(sources).tolist() == ["S005", "S130"]
    assert subject_ids(np.array(["faces:sad/anna-3.jpg"]), r"^([a-z]+)-").tolist() == ["anna"]
    assert subject_ids(np.array(["anna/sad/3.jpg"]), r"^([^/]+)/").tolist() == ["anna"]  # '/': the whole path
    with pytest.raises(DataError, match=r"does not match 1 file name.*IMG_01.png"):
        subject_ids(np.array(["a:happy/S005_1.png", "a:happy/IMG_01.png"]))


@pytest.mark.parametrize("n_folds,seed", [(3, 0), (5, 1), (10, 2)])
def test_subject_folds_never_share_a_subject_and_test_everything_once(n_folds, seed):
    rng = np.random.default_rng(seed)
    sizes = rng.integers(1, 12, size=40)  # subjects with very different numbers of images
    groups = np.repeat([f"S{i:03d}" for i in range(40)], sizes)
    labels = rng.integers(0, 7, size=len(groups))
    folds = group_kfold(labels, groups, n_folds, seed)
    assert len(folds) == n_folds and all(len(f) for f in folds)
    assert np.array_equal(np.sort(np.concatenate(folds)), np.arange(len(labels)))  # each sample exactly once
    subjects = [set(groups[f].tolist()) for f in folds]
    for a in range(n_folds):
        for b in range(a + 1, n_folds):
            assert not subjects[a] & subjects[b]
    assert group_kfold(labels, groups, n_folds, seed)[0].tolist() == folds[0].tolist()  # seeded
    # class shares stay close to the whole set's: no fold misses a frequent class
    for f in folds:
        assert len(np.unique(labels[f])) >= 5
    # inside a fold, validation is whole subjects too
    roles = fold_roles(len(labels), folds[0], labels, groups, 0.15, seed)
    by_role = {r: set(groups[roles == r].tolist()) for r in ("train", "val", "test")}
    assert by_role["val"] and not (by_role["val"] & by_role["train"]) and not (by_role["test"] & by_role["train"])


def test_too_few_subjects_is_a_clear_error():
    with pytest.raises(DataError, match="3 subjects cannot fill 10 folds"):
        group_kfold(np.zeros(9, int), np.repeat(["a", "b", "c"], 3), 10)


def test_tiny_three_fold_crossval_writes_its_report(ck_style, tmp_path):
    out = tmp_path / "cv"
    train = TrainConfig(arch="vgg", width=8, epochs=8, batch_size=8, lr=1e-2, rotation=0.0, scale=0.0,
                        crop_padding=2, label_set="folders", val_fraction=0.2, seed=0)
    data_cfg = DataConfig(data=str(ck_style))
    lines: list[str] = []
    result = run_crossval(CrossvalConfig(folds=3, out=str(out)), train, data_cfg, progress=False, log=lines.append)

    saved = json.loads((out / "crossval.json").read_text())
    assert saved["labels"] == list(CLASSES) and saved["folds"] == 3 and saved["subjects"] == 6
    assert saved["n"] == 54 and sum(f["n_test"] for f in saved["per_fold"]) == 54
    for key in ("accuracy", "macro_f1"):
        stats = saved[key]
        assert len(stats["per_fold"]) == 3 and stats["mean"] == pytest.approx(np.mean(stats["per_fold"]))
        assert stats["std"] == pytest.approx(np.std(stats["per_fold"], ddof=1))
    assert np.asarray(saved["confusion"]).shape == (3, 3) and np.asarray(saved["confusion"]).sum() == 54
    assert saved["accuracy"]["mean"] > 0.7, saved["accuracy"]  # chance is 1/3
    assert result["per_fold"] == saved["per_fold"]

    folds = json.loads((out / "folds.json").read_text())
    data = read_dataset(ck_style, label_set="folders")
    keys = sample_keys(data.sources, str(ck_style)).tolist()
    assert sorted(folds["assignment"]) == sorted(keys)  # every image in exactly one fold
    fold_subjects = [set(f["subjects"]) for f in folds["folds"]]
    assert sum(len(s) for s in fold_subjects) == 6 == len(set().union(*fold_subjects))
    for f in saved["per_fold"]:
        run = out / f["run"]
        split = json.loads((run / "splits.json").read_text())["splits"]
        test_subjects = {k.split("/")[-1][:4] for k, r in split.items() if r == "test"}
        other = {k.split("/")[-1][:4] for k, r in split.items() if r != "test"}
        assert test_subjects == set(f["subjects"]) and not test_subjects & other
        assert (run / "best.pt").is_file() and (run / "test.json").is_file()
    assert any(line.startswith("fold 3/3: accuracy") for line in lines)
    assert lines[-1].startswith("crossval: accuracy")


def test_crossval_cli_resumes_finished_folds(ck_style, tmp_path, capsys):
    from nasfer.cli import main

    argv = ["crossval", "--data", str(ck_style), "--label-set", "folders", "--folds", "2", "--epochs", "1",
            "--width", "4", "--batch-size", "16", "--out", str(tmp_path / "cv"), "--threads", "1"]
    assert main(argv) == 0
    first = json.loads((tmp_path / "cv" / "crossval.json").read_text())
    mtime = (tmp_path / "cv" / "fold-01" / "last.pt").stat().st_mtime_ns
    assert main(argv) == 0  # everything trained already: only re-scored
    assert (tmp_path / "cv" / "fold-01" / "last.pt").stat().st_mtime_ns == mtime
    assert json.loads((tmp_path / "cv" / "crossval.json").read_text())["per_fold"][0]["accuracy"] == \
        first["per_fold"][0]["accuracy"]
    out = capsys.readouterr().out
    assert "fold 2/2: accuracy" in out and "crossval: accuracy" in out
    assert main(["crossval", "--data", str(ck_style), "--folds", "2", "--group-regex", "^(P\\d+)-",
                 "--out", str(tmp_path / "bad")]) == 2
    assert "does not match" in capsys.readouterr().err and not (tmp_path / "bad").exists()  # none left behind


def test_a_changed_fold_plan_does_not_resume_the_old_folds(ck_style, tmp_path, capsys):
    """Before: the same --out with --folds 3 after --folds 2 resumed fold-01's 2-fold model, trained on subjects
    the new fold 1 tests on, and reported its score."""
    from nasfer.cli import main

    argv = ["crossval", "--data", str(ck_style), "--label-set", "folders", "--epochs", "1", "--width", "4",
            "--batch-size", "16", "--out", str(tmp_path / "cv"), "--threads", "1"]
    assert main([*argv, "--folds", "2"]) == 0
    capsys.readouterr()
    folds = (tmp_path / "cv" / "folds.json").read_text()
    assert main([*argv, "--folds", "3"]) == 2
    err = capsys.readouterr().err
    assert "holds the folds of another plan" in err and "Traceback" not in err
    assert (tmp_path / "cv" / "folds.json").read_text() == folds


def test_crossval_with_changed_flags_says_to_use_a_new_out_not_nasfer_train(ck_style, tmp_path, capsys):
    """Before: the refusal was the one of a single run, advising `nasfer train --init-from .../fold-01/best.pt
    --out NEW_DIR`, which would fine-tune one fold's model, not cross-validate with the new flags."""
    from nasfer.cli import main

    argv = ["crossval", "--data", str(ck_style), "--label-set", "folders", "--folds", "2", "--width", "4",
            "--batch-size", "16", "--out", str(tmp_path / "cv"), "--threads", "1"]
    assert main([*argv, "--epochs", "1"]) == 0
    capsys.readouterr()
    assert main([*argv, "--epochs", "2"]) == 2
    err = capsys.readouterr().err
    assert "--epochs 1 -> 2" in err and "give a new --out" in err and "nasfer train" not in err, err


def test_crossval_never_writes_into_a_folder_of_other_files_such_as_the_dataset(ck_style, tmp_path, capsys):
    """Before: `--out` the dataset folder itself wrote fold-01/ ... (curves.png among them) and confusion.png into
    it, so the next training read fold-01 as a class; `nasfer train` already refused such a folder."""
    import shutil

    from nasfer.cli import main

    data = tmp_path / "CK+48"
    shutil.copytree(ck_style, data)
    before = sorted(p.relative_to(data) for p in data.rglob("*"))
    argv = ["crossval", "--data", str(data), "--label-set", "folders", "--folds", "2", "--epochs", "1", "--width",
            "4", "--batch-size", "16", "--threads", "1"]
    assert main([*argv, "--out", str(data)]) == 2
    err = capsys.readouterr().err
    assert "is inside the dataset folder" in err and "Traceback" not in err, err
    assert sorted(p.relative_to(data) for p in data.rglob("*")) == before
    other = tmp_path / "photos"  # any folder of other files, not only the dataset's
    other.mkdir()
    (other / "holiday.jpg").write_bytes(b"a picture")
    assert main([*argv, "--out", str(other)]) == 2
    err = capsys.readouterr().err
    assert "which a crossval does not write" in err and "Traceback" not in err, err
    assert [p.name for p in other.iterdir()] == ["holiday.jpg"]


def test_a_crossval_directory_inside_the_dataset_folder_is_refused(ck_style, tmp_path, capsys):
    import shutil

    from nasfer.cli import main

    data = tmp_path / "CK+48"
    shutil.copytree(ck_style, data)
    assert main(["crossval", "--data", str(data), "--label-set", "folders", "--folds", "2", "--epochs", "1",
                 "--width", "4", "--out", str(data / "cv")]) == 2
    assert "is inside the dataset folder" in capsys.readouterr().err and not (data / "cv").exists()
