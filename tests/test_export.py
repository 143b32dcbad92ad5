"""Checkpoint -> ONNX export: graph contract, parity check, model card, metrics merge, CLI errors."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from fixtures_config import assert_validation

from nasfer.checkpoint import load_checkpoint
from nasfer.cli import main
from nasfer.errors import ModelError
from nasfer.labels import EMOTIONS


def card_of(onnx_path: Path) -> dict:
    return json.loads(onnx_path.with_suffix(".json").read_text())


def test_onnx_graph_has_the_contract_names_shapes_and_opset(tiny_onnx):
    import onnx

    proto = onnx.load(str(tiny_onnx))
    onnx.checker.check_model(proto)
    assert [o.version for o in proto.opset_import if o.domain in ("", "ai.onnx")] == [17]
    (inp,), (out,) = proto.graph.input, proto.graph.output
    assert inp.name == "input" and out.name == "probs"
    dims = inp.type.tensor_type.shape.dim
    assert dims[0].dim_param and [d.dim_value for d in dims[1:]] == [1, 48, 48]  # dynamic batch
    assert out.type.tensor_type.shape.dim[1].dim_value == 7
    assert "Softmax" in {n.op_type for n in proto.graph.node}


def test_card_follows_the_contract(tiny_onnx, tiny_checkpoint):
    from nasfer.checkpoint import load_model
    from nasfer.runtime.engine import sha256_file
    from nasfer.models.baselines import count_flops, count_params

    card = card_of(tiny_onnx)
    assert card["format"] == "nasfer-model-card/1" and card["name"] == "tiny"
    assert card["labels"] == list(EMOTIONS)
    assert card["preprocessing"] == {"size": 48, "channels": 1, "mean": 0.5, "std": 0.25}
    assert card["onnx"] == {"file": "tiny.onnx", "input": "input", "output": "probs", "opset": 17,
                            "sha256": sha256_file(tiny_onnx), "tta": False}
    model, _ = load_model(tiny_checkpoint)
    arch = card["architecture"]
    assert arch["name"] == "vgg" and arch["kwargs"]["width"] == 8 and arch["genotype"] is None
    assert arch["params"] == count_params(model) and arch["flops"] == count_flops(model, 48)
    training = card["training"]
    assert training["val_accuracy"] == 0.31 and training["data"] == "fer2013.zip"
    # the tiny checkpoint holds epoch 2 of a 2-epoch schedule: best epoch, scheduled and completed agree
    assert (training["best_epoch"], training["scheduled_epochs"], training["epochs_completed"]) == (2, 2, 2)
    assert training["completed"] is True and "epochs" not in training
    (command,) = training["commands"]
    assert command.startswith("nasfer train --data fer2013.zip")
    assert "--epochs 2" in command and "--width 8" in command
    assert card["export"]["command"].startswith("nasfer export --checkpoint ")
    assert len(training["history"]) == 2 and training["config"]["train"]["arch"] == "vgg"
    assert card["metrics"] == {} and card["export"]["parity_max_abs_diff"] <= 1e-4
    assert "--model tiny.onnx" in card["evaluation"]["fer2013"] and "--split PublicTest" in card["evaluation"]["fer2013"]
    assert card["evaluation"]["ckplus"].startswith("nasfer evaluate --data CK+48 --model tiny.onnx")
    text = " ".join(card["limitations"]).lower()
    for needle in ("fer2013", "noisy", "48x48", "grayscale", "web-scraped", "high-stakes"):
        assert needle in text
    assert "/home/someone" not in json.dumps(card)  # local paths are not published


def test_parity_check_runs_real_images_and_catches_a_different_model(tiny_onnx, tiny_checkpoint):
    from nasfer.checkpoint import load_model
    from nasfer.export import parity_check
    from nasfer.preprocessing import Preprocessing
    from fixtures_models import tiny_model

    model, _ = load_model(tiny_checkpoint)
    images = np.random.default_rng(3).integers(0, 256, (20, 48, 48), dtype=np.uint8)
    assert parity_check(model, tiny_onnx, Preprocessing(), images) <= 1e-4
    with pytest.raises(ModelError, match="parity check failed"):
        parity_check(tiny_model(seed=1), tiny_onnx, Preprocessing(), images)


def test_failed_parity_writes_nothing(tiny_checkpoint, tmp_path):
    from nasfer.export import ExportConfig, export_checkpoint

    out = tmp_path / "m.onnx"
    with pytest.raises(ModelError, match="was not written"):
        export_checkpoint(ExportConfig(checkpoint=str(tiny_checkpoint), out=str(out), atol=1e-15))  # no export is that exact
    assert list(tmp_path.iterdir()) == []


def test_the_python_api_checks_the_config_before_any_work(tiny_checkpoint, tmp_path):
    """Before: atol=-1 exported, then failed its parity check with a misleading message."""
    from nasfer.export import ExportConfig, export_checkpoint

    with pytest.raises(ValueError, match="--atol"):
        export_checkpoint(ExportConfig(checkpoint=str(tiny_checkpoint), out=str(tmp_path / "m.onnx"), atol=-1.0))
    assert list(tmp_path.iterdir()) == []


def test_tta_export_averages_the_mirror_image(tiny_checkpoint, tiny_onnx, tmp_path, capsys):
    from nasfer.runtime.engine import Classifier

    assert load_checkpoint(tiny_checkpoint)["config"]["train"]["tta"] is True  # scored with flip TTA
    assert main(["export", "--checkpoint", str(tiny_checkpoint), "--out", str(tmp_path / "plain.onnx")]) == 0
    said = capsys.readouterr().out
    assert "--tta builds the flip into the graph" in said  # user review: said nothing
    # a run with an official test split wrote no test.json (before: the note named it all the same)
    assert "scored its validation images with flip TTA" in said and "test.json" not in said
    run = tmp_path / "run"  # a dataset without one: the run scored its held-out test part into test.json
    run.mkdir()
    shutil.copy(tiny_checkpoint, run / "best.pt")
    (run / "test.json").write_text("{}")
    assert main(["export", "--checkpoint", str(run / "best.pt"), "--out", str(tmp_path / "plain2.onnx")]) == 0
    assert "scored validation and test.json with flip TTA" in capsys.readouterr().out
    out = tmp_path / "tta.onnx"
    assert main(["export", "--checkpoint", str(tiny_checkpoint), "--out", str(out), "--tta"]) == 0
    assert card_of(out)["onnx"]["tta"] is True and "--tta builds" not in capsys.readouterr().out
    crops = np.random.default_rng(0).integers(0, 256, (5, 48, 48), dtype=np.uint8)
    plain = Classifier(tiny_onnx)
    expected = 0.5 * (plain.predict(crops) + plain.predict(crops[:, :, ::-1].copy()))
    np.testing.assert_allclose(Classifier(out).predict(crops), expected, atol=1e-5)
    import onnx

    def convs(path):
        return sum(node.op_type == "Conv" for node in onnx.load(str(path)).graph.node)

    # one pass over the crop and its mirror stacked in the batch (before: the network twice in the graph)
    assert convs(out) == convs(tmp_path / "plain.onnx") > 0


def test_metrics_are_merged_into_the_card(tiny_onnx, tiny_checkpoint, tmp_path, capsys):
    from nasfer.runtime.engine import Classifier

    evaluation = {"n": 10, "labels": list(EMOTIONS), "accuracy": 0.6, "macro_f1": 0.5, "split": "PrivateTest"}
    metrics = tmp_path / "eval.json"
    metrics.write_text(json.dumps(evaluation))
    model = tmp_path / "m.onnx"
    shutil.copy(tiny_onnx, model)
    shutil.copy(tiny_onnx.with_suffix(".json"), model.with_suffix(".json"))
    # card-only update of an existing export, named split
    assert main(["export", "--out", str(model), "--metrics", str(metrics), "--metrics-split", "PublicTest"]) == 0
    # and the split the JSON names itself
    assert main(["export", "--out", str(model), "--metrics", str(metrics)]) == 0
    card = card_of(model)
    assert card["metrics"] == {"PublicTest": evaluation, "PrivateTest": evaluation}
    assert Classifier(model).card["metrics"]["PublicTest"]["accuracy"] == 0.6  # sha still matches
    # during the export itself
    other = tmp_path / "n.onnx"
    assert main(["export", "--checkpoint", str(tiny_checkpoint), "--out", str(other), "--metrics", str(metrics),
                 "--metrics-split", "PublicTest"]) == 0
    assert card_of(other)["metrics"] == {"PublicTest": evaluation}
    assert "ONNX Runtime matches PyTorch" in capsys.readouterr().out


@pytest.mark.parametrize("argv, message", [
    (["--checkpoint", "/nonexistent.pt", "--out", "{tmp}/m.onnx"], "checkpoint not found"),
    (["--checkpoint", "{ckpt}", "--out", "{tmp}/m.txt"], "must end in .onnx"),
    (["--out", "{tmp}/m.onnx"], "give --checkpoint"),
    (["--out", "{tmp}/m.onnx", "--metrics", "{tmp}/missing.json"], "metrics file not found"),
])
def test_export_errors_are_one_line(argv, message, tiny_checkpoint, tmp_path, capsys):
    argv = [a.format(tmp=tmp_path, ckpt=tiny_checkpoint) for a in argv]
    assert main(["export", *argv]) == 2
    err = capsys.readouterr().err
    assert err.startswith("nasfer export: error:") and message in err and "Traceback" not in err


def test_a_damaged_checkpoint_is_a_model_error(tmp_path, capsys):
    bad = tmp_path / "bad.pt"
    bad.write_bytes(b"not a checkpoint")
    assert main(["export", "--checkpoint", str(bad), "--out", str(tmp_path / "m.onnx")]) == 2
    assert "not a readable checkpoint" in capsys.readouterr().err


def test_importing_export_loads_no_heavy_module():
    code = "import sys, nasfer.export, nasfer.commands.export; print([m for m in ('torch', 'onnx', 'onnxruntime') if m in sys.modules])"
    assert subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.strip() == "[]"


def test_parity_data_never_reads_test_images(kaggle_zip):
    from nasfer.data import read_dataset
    from nasfer.export import _parity_images

    data = read_dataset(kaggle_zip, size=48)
    got = _parity_images(str(kaggle_zip), 48)
    train = data.select_split("train").images
    assert len(got) == min(256, len(train)) and np.array_equal(got, train[:len(got)])


@pytest.mark.parametrize("kwargs, message", [
    ({"opset": 0}, "--opset must be 7..20"),  # before: torch's RuntimeError traceback
    ({"opset": 99}, "--opset must be 7..20"),
    ({"quantize": "int8", "checkpoint": "m.pt", "opset": 12}, "--opset must be 13..20"),  # before: ORT traceback
    ({"atol": -1.0}, "--atol must be within (0, 1)"),  # before: "parity check failed ... (allowed -1e+00)"
    ({"atol": 0.0}, "--atol must be within (0, 1)"),
    ({"atol": 5.0}, "--atol must be within (0, 1)"),  # before: accepted, so no parity check at all
    ({"atol": float("nan")}, "--atol must be within (0, 1)"),
    ({"quantize": "int8", "calibration_images": 0}, "--calibration-images must be at least 1"),
    ({"quantize": "int8", "seed": -1}, "--seed must be >= 0"),
    ({"quantize": "int8", "val_fraction": 2.0}, "--val-fraction must be within (0, 1)"),
    ({"quantize": "int8", "val_fraction": 0.0}, "--val-fraction must be within (0, 1)"),
    ({"quantize": "int8", "max_accuracy_drop": -1.0}, "--max-accuracy-drop must be within 0..100"),
    ({"quantize": "int8", "max_accuracy_drop": 1000.0}, "--max-accuracy-drop must be within 0..100"),
    ({"calibration_images": 5}, "--calibration-images only applies with --quantize int8"),  # before: ignored
    ({"calibration_data": "x.zip", "max_accuracy_drop": 1.0},
     "--calibration-data, --max-accuracy-drop only apply with --quantize int8"),
    ({"opset": 7, "atol": 0.5}, None),  # boundaries are accepted
    ({"opset": 20}, None),
    ({"quantize": "int8", "checkpoint": "m.pt", "opset": 13, "calibration_images": 1, "seed": 0,
      "val_fraction": 0.5, "max_accuracy_drop": 0.0}, None),
    ({"quantize": "int8", "onnx": "m.onnx", "max_accuracy_drop": 100.0}, None),
])
def test_config_validation(kwargs, message):
    from nasfer.export import ExportConfig

    cfg = ExportConfig(**kwargs)
    assert_validation(cfg, message)


def test_impossible_opset_is_one_line(tiny_checkpoint, tmp_path, capsys):
    assert main(["export", "--checkpoint", str(tiny_checkpoint), "--out", str(tmp_path / "m.onnx"), "--opset", "0"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("nasfer export: error: --opset must be 7..20") and len(err.strip().splitlines()) == 1
    assert not (tmp_path / "m.onnx").exists()
