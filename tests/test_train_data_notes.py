"""What a run says before it trains: a label the training images never show, a backbone that never trains.

User review: with --label-set folders, a class folder only under test/ (a typo: test/surprised beside
train/surprise, or a class not collected for training yet) became a label the model can never learn; the run
trained, tested it as always wrong, and said nothing.
"""

from __future__ import annotations

from fixtures_data import write_class_tree
from nasfer.config import DataConfig, TrainConfig
from nasfer.training.data import prepare_data


def test_a_label_with_no_training_images_is_reported(tmp_path):
    data = tmp_path / "faces"
    write_class_tree(data, per_class=6, classes=("happy", "sad"), split="train")
    write_class_tree(data, per_class=3, seed=1, classes=("happy", "sad", "surprised"), split="test")
    said: list[str] = []
    parts = prepare_data(TrainConfig(label_set="folders", out=str(tmp_path / "run")), DataConfig(data=str(data)),
                         tmp_path / "run", log=said.append)
    assert parts.label_names == ("happy", "sad", "surprised")
    notes = [m for m in said if "surprised" in m]
    assert notes and "no training images" in notes[0] and "3 in test" in notes[0], said


def test_nothing_is_said_when_every_label_is_trained_on(tmp_path):
    data = tmp_path / "faces"
    write_class_tree(data, per_class=6, classes=("happy", "sad"))
    said: list[str] = []
    prepare_data(TrainConfig(label_set="folders", out=str(tmp_path / "run")), DataConfig(data=str(data)),
                 tmp_path / "run", log=said.append)
    assert not [m for m in said if "no training images" in m], said


def test_a_backbone_frozen_for_every_epoch_is_said(tmp_path, capsys):
    """Before: --freeze-epochs 3 with --epochs 2 printed "(backbone x0.1)" and trained the head only, without a
    word that the backbone never trains (a linear probe: allowed, but said)."""
    from fixtures_evaluate import save_tiny_checkpoint
    from nasfer.cli import main

    data = tmp_path / "faces"
    write_class_tree(data, per_class=6, classes=("happy", "sad"))
    start = save_tiny_checkpoint(tmp_path / "start.pt")
    common = ["train", "--data", str(data), "--init-from", str(start), "--batch-size", "8", "--threads", "1"]
    assert main([*common, "--freeze-epochs", "3", "--epochs", "2", "--out", str(tmp_path / "a")]) == 0
    out = capsys.readouterr().out
    assert "backbone stays frozen for all 2 epochs" in out and "only the classifier head trains" in out, out
    assert main([*common, "--freeze-epochs", "1", "--epochs", "2", "--out", str(tmp_path / "b")]) == 0
    out = capsys.readouterr().out
    assert "backbone frozen for the first 1 epoch" in out and "stays frozen" not in out, out


def test_a_folder_label_whose_images_were_all_unreadable_is_reported(tmp_path):
    """User review: surprise/ holding only corrupt files became a label of the model (its head row copied from
    the checkpoint's), trained on no image; only the skipped files were counted."""
    data = tmp_path / "faces"
    write_class_tree(data, per_class=6, classes=("happy", "sad"))
    (data / "surprise").mkdir()
    for i in range(3):
        (data / "surprise" / f"{i}.jpg").write_bytes(b"not a picture")
    said: list[str] = []
    parts = prepare_data(TrainConfig(label_set="folders", out=str(tmp_path / "run")), DataConfig(data=str(data)),
                         tmp_path / "run", log=said.append)
    assert parts.label_names == ("happy", "sad", "surprise")
    notes = [m for m in said if "label 'surprise'" in m]
    assert notes and "no readable images" in notes[0], said


def test_the_canonical_labels_absent_from_a_dataset_are_not_reported(tmp_path):
    data = tmp_path / "faces"
    write_class_tree(data, per_class=6, classes=("happy", "sad"))
    said: list[str] = []
    prepare_data(TrainConfig(out=str(tmp_path / "run")), DataConfig(data=str(data)), tmp_path / "run",
                 log=said.append)
    assert not [m for m in said if "warning" in m], said


def test_test_fraction_zero_says_that_no_test_json_is_written(tmp_path):
    """Before: `--test-fraction 0` on a dataset without a test split of its own wrote no test.json, without a word."""
    data = tmp_path / "faces"
    write_class_tree(data, per_class=6, classes=("happy", "sad"))
    said: list[str] = []
    parts = prepare_data(TrainConfig(test_fraction=0.0, out=str(tmp_path / "run")), DataConfig(data=str(data)),
                         tmp_path / "run", log=said.append)
    assert not len(parts.test_y) and any("no test.json" in m for m in said), said
    said.clear()
    prepare_data(TrainConfig(out=str(tmp_path / "run2")), DataConfig(data=str(data)), tmp_path / "run2",
                 log=said.append)
    assert not any("no test.json" in m for m in said), said  # the default holds a test part out
    said.clear()
    write_class_tree(tmp_path / "split", per_class=6, classes=("happy", "sad"), split="train")
    write_class_tree(tmp_path / "split", per_class=2, seed=1, classes=("happy", "sad"), split="test")
    prepare_data(TrainConfig(test_fraction=0.0, out=str(tmp_path / "run3")), DataConfig(data=str(tmp_path / "split")),
                 tmp_path / "run3", log=said.append)
    assert not any("no test.json" in m for m in said), said  # its own test/ folder is the test part
    said.clear()
    import json

    (tmp_path / "roles.json").write_text(json.dumps(dict(zip(parts.keys.tolist(), parts.roles.tolist()))))
    prepare_data(TrainConfig(test_fraction=0.0, split_file=str(tmp_path / "roles.json"),
                             out=str(tmp_path / "run4")), DataConfig(data=str(data)), tmp_path / "run4", log=said.append)
    assert not any("--test-fraction 0" in m for m in said), said  # the split file gave the roles, not the flag
