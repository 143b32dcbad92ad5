"""`nasfer evaluate --record`: a released model's test score is stored in its card once (the protocol), and
nothing else overwrites it."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from fixtures_evaluate import run_cli


@pytest.fixture
def released(tmp_path, tiny_onnx) -> Path:
    """A copy of the tiny export with its card: a 'released model' whose card --record may write."""
    out = tmp_path / "released.onnx"
    shutil.copy(tiny_onnx, out)
    shutil.copy(tiny_onnx.with_suffix(".json"), out.with_suffix(".json"))
    return out


def test_record_stores_the_score_once_with_date_and_command(capsys, kaggle_zip, released):
    code, out, err = run_cli(capsys, "--data", kaggle_zip, "--model", released, "--split", "PublicTest", "--record",
                             "--json", "-")
    assert code == 0 and "recorded in" in err
    report = json.loads(out)
    card = json.loads(released.with_suffix(".json").read_text())
    entry = card["metrics"]["PublicTest"]
    assert entry["accuracy"] == report["accuracy"] and entry["n"] == 7 and entry["confusion"] == report["confusion"]
    assert entry["recorded"]["date"].endswith("Z") and entry["model"]["path"] == "released.onnx"
    assert entry["recorded"]["command"] == (f"nasfer evaluate --data {kaggle_zip} --split PublicTest --model "
                                            f"{released} --json - --record")
    from nasfer.runtime.engine import Classifier

    assert Classifier(released).card["metrics"]["PublicTest"]["n"] == 7  # the card is still valid for the engine
    # a second score for the same split is refused, and the card is left as it was
    code, _, err = run_cli(capsys, "--data", kaggle_zip, "--model", released, "--split", "PublicTest", "--record")
    assert code == 2 and "already records a PublicTest score" in err and "--overwrite-record" in err
    assert json.loads(released.with_suffix(".json").read_text()) == card
    # ... unless explicitly replaced; the old record stays visible
    code, _, _ = run_cli(capsys, "--data", kaggle_zip, "--model", released, "--split", "PublicTest", "--record",
                         "--overwrite-record")
    card = json.loads(released.with_suffix(".json").read_text())
    assert code == 0 and card["previous_records"] == [{"split": "PublicTest", "accuracy": entry["accuracy"],
                                                       "macro_f1": entry["macro_f1"], "recorded": entry["recorded"]}]
    assert "--overwrite-record" in card["metrics"]["PublicTest"]["recorded"]["command"]


@pytest.mark.parametrize("again", ["publictest", "PUBLICTEST", "test", "all"])
def test_record_cannot_be_repeated_under_another_name_for_the_same_images(capsys, kaggle_zip, released, again):
    """Once PublicTest is recorded, another spelling, the 'test' alias or 'all' (which hold its images) are
    refused too, and a first record is stored under the dataset's own split name."""
    code, _, _ = run_cli(capsys, "--data", kaggle_zip, "--model", released, "--split", "publictest", "--record")
    card = json.loads(released.with_suffix(".json").read_text())
    assert code == 0 and list(card["metrics"]) == ["PublicTest"]
    assert card["metrics"]["PublicTest"]["split_requested"] == "publictest"
    code, _, err = run_cli(capsys, "--data", kaggle_zip, "--model", released, "--split", again, "--record")
    assert code == 2 and "already records a PublicTest score" in err
    assert json.loads(released.with_suffix(".json").read_text()) == card


def test_record_is_kept_when_writing_the_report_fails(capsys, kaggle_zip, released, tmp_path):
    blocked = tmp_path / "file"
    blocked.write_text("")
    code, _, err = run_cli(capsys, "--data", kaggle_zip, "--model", released, "--split", "PublicTest", "--record",
                           "--json", str(blocked / "report.json"))  # a folder that cannot be made
    assert code == 2 and "cannot write the report" in err and "the score is recorded in the card" in err
    assert "PublicTest" in json.loads(released.with_suffix(".json").read_text())["metrics"]


def test_export_refuses_to_replace_a_model_whose_card_records_a_test_score(capsys, kaggle_zip, released, checkpoint,
                                                                           tmp_path):
    from nasfer.errors import ModelError
    from nasfer.export import ExportConfig, export_checkpoint

    code, _, _ = run_cli(capsys, "--data", kaggle_zip, "--model", released, "--split", "PublicTest", "--record")
    card = released.with_suffix(".json").read_text()
    with pytest.raises(ModelError, match="would lose that record"):
        export_checkpoint(ExportConfig(checkpoint=str(checkpoint), out=str(released)))
    with pytest.raises(ModelError, match="would lose that record"):
        export_checkpoint(ExportConfig(onnx=str(released), out=str(released), quantize="int8",
                                       calibration_data=str(kaggle_zip)))
    metrics = tmp_path / "m.json"
    metrics.write_text(json.dumps({"split": "PublicTest", "accuracy": 0.99}))
    with pytest.raises(ModelError, match="scored on it once"):
        export_checkpoint(ExportConfig(out=str(released), metrics=str(metrics)))
    assert code == 0 and released.with_suffix(".json").read_text() == card
    metrics.write_text(json.dumps({"split": "val", "accuracy": 0.5}))  # another split may still be added
    export_checkpoint(ExportConfig(out=str(released), metrics=str(metrics)))
    assert json.loads(released.with_suffix(".json").read_text())["metrics"]["val"]["accuracy"] == 0.5
    # the card's documented CK+ cross-check (split "all" of another dataset) is added beside it, not refused
    metrics.write_text(json.dumps({"split": "all", "accuracy": 0.8, "dataset": {"path": "/data/CK+48"}}))
    export_checkpoint(ExportConfig(out=str(released), metrics=str(metrics)))
    card = json.loads(released.with_suffix(".json").read_text())
    assert card["metrics"]["all"]["accuracy"] == 0.8 and card["metrics"]["PublicTest"]["recorded"]


def test_a_record_on_another_dataset_does_not_block_this_one(capsys, kaggle_zip, released, folder):
    code, _, _ = run_cli(capsys, "--data", folder, "--model", released, "--split", "test", "--record")
    assert code == 0
    code, _, err = run_cli(capsys, "--data", kaggle_zip, "--model", released, "--split", "PublicTest", "--record")
    metrics = json.loads(released.with_suffix(".json").read_text())["metrics"]
    assert code == 0 and set(metrics) == {"test", "PublicTest"}
    code, _, err = run_cli(capsys, "--data", kaggle_zip, "--model", released, "--split", "test", "--record")
    assert code == 2 and "already records a PublicTest score" in err  # the same dataset's images: refused


@pytest.mark.parametrize("extra, message", [
    ([], "needs an explicit --split"),
    (["--split", "PublicTest", "--tta"], "leave out --tta/--ten-crop"),
    (["--split", "PublicTest", "--ten-crop"], "leave out --tta/--ten-crop"),
])
def test_record_refusals_cost_no_evaluation(capsys, kaggle_zip, released, extra, message):
    before = released.with_suffix(".json").read_text()
    code, _, err = run_cli(capsys, "--data", kaggle_zip, "--model", released, "--record", *extra)
    assert code == 2 and message in err
    assert released.with_suffix(".json").read_text() == before


def test_record_needs_an_exported_model(capsys, kaggle_zip, checkpoint):
    code, _, err = run_cli(capsys, "--data", kaggle_zip, "--model", checkpoint, "--split", "PublicTest", "--record")
    assert code == 2 and "export the checkpoint first" in err


def test_record_refuses_a_score_that_may_include_the_models_training_images(capsys, tmp_path):
    """Before: `nasfer evaluate --data my_faces --model EXPORTED.onnx --split all --record` stored a "test"
    score over the images the model trained on (the exported card keeps only its run's folder name, so the
    run's splits.json was not found), with just a note. Now the record is refused and the card left alone;
    the held-out images (the run's --split-file, split test) are recorded."""
    from fixtures_data import write_class_tree

    from nasfer.cli import main

    data, run, release = tmp_path / "my_faces", tmp_path / "run", tmp_path / "release"
    write_class_tree(data, per_class=10, seed=5, classes=("happy", "sad", "neutral"))
    assert main(["train", "--data", str(data), "--out", str(run), "--arch", "vgg", "--width", "4", "--epochs", "1",
                 "--threads", "1"]) == 0
    model = release / "mine.onnx"
    assert main(["export", "--checkpoint", str(run / "best.pt"), "--out", str(model)]) == 0
    capsys.readouterr()
    card = model.with_suffix(".json").read_text()
    code, _, err = run_cli(capsys, "--data", data, "--model", model, "--split", "all", "--record")
    assert code == 2 and "--record stores a test score" in err and "may include its training images" in err
    assert model.with_suffix(".json").read_text() == card
    code, out, err = run_cli(capsys, "--data", data, "--model", model, "--split-file", run / "splits.json",
                             "--split", "test", "--record")
    assert code == 0 and "recorded in" in err
    assert json.loads(model.with_suffix(".json").read_text())["metrics"]["test"]["recorded"]
