"""`nasfer export --quantize int8`: static QDQ quantization, validation parity gate, card, engine runs it as is."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from nasfer.cli import main


def card_of(path: Path) -> dict:
    return json.loads(path.with_suffix(".json").read_text())


def quantize(capsys, *argv) -> tuple[int, str, str]:
    code = main(["export", "--quantize", "int8", *map(str, argv)])
    out, err = capsys.readouterr()
    assert "Traceback" not in err
    return code, out, err


def test_int8_from_an_onnx_export_is_static_qdq_with_its_parity_in_the_card(capsys, tmp_path, tiny_onnx, kaggle_zip):
    import onnx

    from nasfer.runtime.engine import Classifier, sha256_file

    out = tmp_path / "tiny-int8.onnx"
    code, stdout, _ = quantize(capsys, "--onnx", tiny_onnx, "--calibration-data", kaggle_zip, "--out", out,
                               "--calibration-images", 10, "--max-accuracy-drop", 100)
    assert code == 0 and "int8" in stdout and "validation" in stdout and "--split SPLIT" in stdout
    ops = {n.op_type for n in onnx.load(str(out)).graph.node}
    assert {"QuantizeLinear", "DequantizeLinear"} <= ops  # QDQ format, not dynamic (no DynamicQuantizeLinear)
    assert "DynamicQuantizeLinear" not in ops and "MatMulInteger" not in ops and "ConvInteger" not in ops
    weights = [t for t in onnx.load(str(out)).graph.initializer if t.data_type == onnx.TensorProto.INT8]
    assert any(len(t.dims) == 4 for t in weights)  # conv weights stored as int8
    # ... in 7 bits: a uint8 activation times a weight, two of them summed, fits int16 (255 x 64 x 2 < 32768), so
    # CPUs without VNNI (VPMADDUBSW saturates) compute what VNNI CPUs do. Before: full-range int8 weights, and
    # the shipped fast model agreed with its fp32 graph on 82% of validation faces on an AVX2 CPU.
    from onnx.numpy_helper import to_array

    assert max(np.abs(to_array(t).astype(int)).max() for t in weights if len(t.dims) == 4) <= 64
    card = card_of(out)
    quant = card["quantization"]
    assert quant["format"] == "int8" and "per-channel" in quant["method"] and "QDQ" in quant["method"]
    assert quant["source"] == {"file": "tiny.onnx", "sha256": sha256_file(tiny_onnx), "metrics": {}}
    # calibration on the training role, parity on the validation role of the same split as `nasfer train` draws
    assert quant["calibration"]["n_calibration"] == 10 and quant["calibration"]["n_validation"] == 7
    parity = quant["parity"]
    assert parity["split"] == "validation" and parity["n"] == 7 and 0 <= parity["top1_agreement"] <= 1
    assert parity["accuracy_drop_points"] == pytest.approx(100 * (parity["fp32_accuracy"] - parity["int8_accuracy"]),
                                                          abs=1e-3)
    assert card["onnx"]["sha256"] == sha256_file(out) and card["metrics"] == {}
    assert "--quantize int8" in quant["command"] and "--onnx" in quant["command"]
    # the engine runs it unchanged, close to the fp32 model
    crops = np.random.default_rng(0).integers(0, 256, (6, 48, 48), dtype=np.uint8)
    q, f = Classifier(out).predict(crops), Classifier(tiny_onnx).predict(crops)
    assert q.shape == f.shape and np.allclose(q.sum(1), 1, atol=1e-5) and np.abs(q - f).max() < 0.2
    assert out.stat().st_size < tiny_onnx.stat().st_size
    # quantizing an int8 model again is refused
    code, _, err = quantize(capsys, "--onnx", out, "--calibration-data", kaggle_zip, "--out", tmp_path / "again.onnx")
    assert code == 2 and "quantized already" in err


def test_parity_failure_refuses_and_writes_nothing(capsys, tmp_path, tiny_onnx, kaggle_zip, monkeypatch):
    import nasfer.quantize as quantize_module

    out = tmp_path / "refused.onnx"
    # a negative allowance makes even a perfect int8 model fail the gate; the flag refuses one (ExportConfig.validate),
    # so the gate itself is handed it
    gate = quantize_module.validation_parity
    monkeypatch.setattr(quantize_module, "validation_parity", lambda *args: gate(*args[:-1], -1000.0))
    code, _, err = quantize(capsys, "--onnx", tiny_onnx, "--calibration-data", kaggle_zip, "--out", out,
                            "--max-accuracy-drop", 0)
    assert code == 2 and "int8 quantization refused" in err and "not written" in err
    assert not out.exists() and not out.with_suffix(".json").exists()
    assert not list(tmp_path.glob("*.tmp.onnx"))


def test_from_a_checkpoint_keeps_the_fp32_export_beside_it(capsys, tmp_path, tiny_checkpoint, kaggle_zip):
    out = tmp_path / "m.onnx"
    code, _, _ = quantize(capsys, "--checkpoint", tiny_checkpoint, "--calibration-data", kaggle_zip, "--out", out,
                          "--max-accuracy-drop", 100)
    assert code == 0 and (tmp_path / "m-fp32.onnx").is_file() and card_of(out)["quantization"]["source"]["file"] == "m-fp32.onnx"
    assert card_of(tmp_path / "m-fp32.onnx")["export"]["command"].startswith("nasfer export --checkpoint")


@pytest.mark.parametrize("argv, message", [
    (["--calibration-data", "x.zip"], "exactly one source"),
    (["--onnx", "a.onnx", "--checkpoint", "b.pt", "--calibration-data", "x.zip"], "exactly one source"),
    (["--onnx", "a.onnx"], "needs --calibration-data"),
    (["--onnx", "missing.onnx", "--calibration-data", "x.zip"], "model file not found"),
    (["--onnx", "a.onnx", "--calibration-data", "x.zip", "--tta"], "keeps the TTA its graph has"),
    (["--onnx", "a.onnx", "--calibration-data", "x.zip", "--calibration-images", "0"], "at least 1"),
])
def test_bad_quantize_flags_are_one_line_errors(capsys, tmp_path, monkeypatch, argv, message):
    monkeypatch.chdir(tmp_path)
    code, _, err = quantize(capsys, *argv, "--out", "q.onnx")
    assert code == 2 and message in err


def test_calibration_batches_normalise_like_the_engine():
    from nasfer.preprocessing import Preprocessing, normalize
    from nasfer.quantize import calibration_batches

    images = np.random.default_rng(0).integers(0, 256, (70, 48, 48), dtype=np.uint8)
    batches = list(calibration_batches(images, Preprocessing(), "input", batch_size=32))
    assert [b["input"].shape[0] for b in batches] == [32, 32, 6]
    np.testing.assert_array_equal(np.concatenate([b["input"] for b in batches]), normalize(images, Preprocessing()))


def test_legacy_card_fields_become_generated_fields():
    from nasfer.quantize import legacy_card

    old = {"name": "m", "onnx": {"file": "m.onnx", "tta": True},
           "training": {"command": "nasfer train --out a --epochs 30 && nasfer ensemble --checkpoints a/best.pt "
                                   "b/best.pt --out ensemble.pt", "epochs": 26, "checkpoint_epoch": 26,
                        "config": {"train": {"epochs": 30, "out": "a"}}, "note": "hand-written"}}
    card = legacy_card(old)
    training = card["training"]
    assert training["commands"] == ["nasfer train --out a --epochs 30",
                                    "nasfer ensemble --checkpoints a/best.pt b/best.pt --out ensemble.pt"]
    assert (training["best_epoch"], training["scheduled_epochs"], training["epochs_completed"]) == (26, 30, None)
    assert training["completed"] is None and "note" not in training and "epochs" not in training
    assert card["export"] == {"command": "nasfer export --checkpoint ensemble.pt --out m.onnx --name m --tta",
                              "command_rebuilt": True}
    assert old["training"]["note"] == "hand-written"  # the input is not modified
    assert legacy_card(card) == card  # idempotent: an upgraded card stays as it is
    ensemble = legacy_card({"training": {"config": {"members": [{"train": {"epochs": 40}}, {"train": {"epochs": 12}}]}}})
    assert [m["scheduled_epochs"] for m in ensemble["training"]["members"]] == [40, 12]


def test_quantization_uses_the_split_the_model_held_out():
    """Calibration must read training images and parity the validation images the model was selected on:
    the flags must name its run's split (split file, or seed and val fraction)."""
    from nasfer.quantize import check_held_out_split

    single = {"training": {"config": {"train": {"out": "a", "seed": 3, "val_fraction": 0.2}}}}
    check_held_out_split(single, None, 3, 0.2)
    with pytest.raises(ValueError, match="--seed 3 --val-fraction 0.2"):
        check_held_out_split(single, None, 0, 0.1)
    on_file = {"training": {"config": {"train": {"out": "b", "split_file": "a/splits.json"}}}}
    with pytest.raises(ValueError, match="a/splits.json: pass that file as --split-file"):
        check_held_out_split(on_file, None, 0, 0.1)
    check_held_out_split(on_file, "runs/a/splits.json", 0, 0.1)
    with pytest.raises(ValueError, match="a/splits.json: pass that file"):
        check_held_out_split(on_file, "runs/c/splits.json", 0, 0.1)  # another run's file
    members = [{"train": {"out": "runs/a", "seed": 0, "val_fraction": 0.1}},
               {"train": {"out": "runs/b", "split_file": "runs/a/splits.json"}}]
    own = {"training": {"config": {"members": members, "selection": {"validation_split": "a/splits.json"}}}}
    check_held_out_split(own, None, 0, 0.1)  # selected on the first member's own split: its seed draw
    check_held_out_split(own, "/home/me/runs/a/splits.json", 0, 0.1)
    odd = {"training": {"config": {"train": {"out": "runs/d", "test_fraction": 0.2}}}}
    with pytest.raises(ValueError, match=r"--test-fraction, --limit or --label-set: pass its splits.json as --split-file \(d/splits"):
        check_held_out_split(odd, None, 0, 0.1)
    check_held_out_split(odd, "runs/d/splits.json", 0, 0.1)
    # user review: a --label-set folders run stratified its draw on other label indices; redrawn, 10 of 28
    # "validation" images had been training images
    folders = {"training": {"config": {"train": {"out": "runs/e", "label_set": "folders"}}}}
    with pytest.raises(ValueError, match=r"--label-set: pass its splits.json as --split-file \(e/splits"):
        check_held_out_split(folders, None, 0, 0.1)
    check_held_out_split(folders, "runs/e/splits.json", 0, 0.1)
    other = {"training": {"config": {"members": members, "selection": {"validation_split": "c/splits.json"}}}}
    with pytest.raises(ValueError, match="c/splits.json"):
        check_held_out_split(other, None, 0, 0.1)
    now = {"training": {"config": {"members": members}, "selection": {"validation_split": "c/splits.json"}}}
    with pytest.raises(ValueError, match="c/splits.json"):  # today's cards hold the selection under training
        check_held_out_split(now, None, 0, 0.1)
    check_held_out_split({"name": "old card"}, None, 0, 0.1)  # cards that do not say are not checked


def test_an_old_opset_is_refused_from_the_graph_even_when_the_card_does_not_say(capsys, tmp_path, tiny_checkpoint,
                                                                                kaggle_zip):
    """Before: the opset was read from the card only, so a card without `onnx.opset` let an opset-12 graph
    through to ONNX Runtime's quantizer, which failed with a traceback."""
    old = tmp_path / "old.onnx"
    assert main(["export", "--checkpoint", str(tiny_checkpoint), "--out", str(old), "--opset", "12"]) == 0
    card = card_of(old)
    del card["onnx"]["opset"]
    old.with_suffix(".json").write_text(json.dumps(card))
    code, _, err = quantize(capsys, "--onnx", old, "--calibration-data", kaggle_zip, "--out", tmp_path / "q.onnx")
    assert code == 2 and "ONNX opset 12" in err and not (tmp_path / "q.onnx").exists()


@pytest.mark.parametrize("name", sorted(p.stem for p in (Path(__file__).resolve().parents[1] / "src" / "nasfer"
                                                         / "weights").glob("*.onnx")))
def test_shipped_int8_models_compute_alike_on_every_cpu(name):
    """Before: the shipped int8 models used the full int8 weight range; on an AVX2 CPU (no VNNI) ONNX Runtime's
    int16 pair sums saturated and the fast model lost 3 validation points (benchmarks/results/int8_agreement_avx2.json)."""
    import onnx
    from onnx.numpy_helper import to_array

    path = Path(__file__).resolve().parents[1] / "src" / "nasfer" / "weights" / f"{name}.onnx"
    if not card_of(path).get("quantization"):
        pytest.skip(f"{name} is fp32")
    weights = [t for t in onnx.load(str(path)).graph.initializer if t.data_type == onnx.TensorProto.INT8]
    assert any(len(t.dims) == 4 for t in weights) and max(np.abs(to_array(t).astype(int)).max() for t in weights) <= 64


def test_quantizing_in_place_is_refused_and_keeps_the_fp32_model(capsys, tmp_path, tiny_onnx, kaggle_zip):
    """Before: `--onnx m.onnx --out m.onnx` replaced the fp32 model and its card by the int8 ones (the card's source
    then named itself), although the fp32 source is documented as kept."""
    import shutil

    model = tmp_path / "m.onnx"
    shutil.copy(tiny_onnx, model)
    shutil.copy(Path(tiny_onnx).with_suffix(".json"), model.with_suffix(".json"))
    before = model.read_bytes(), model.with_suffix(".json").read_text()
    code, _, err = quantize(capsys, "--onnx", model, "--calibration-data", kaggle_zip, "--out", model)
    assert code == 2 and "quantizing in place would lose the fp32 model" in err
    assert (model.read_bytes(), model.with_suffix(".json").read_text()) == before
