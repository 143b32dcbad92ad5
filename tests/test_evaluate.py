"""`nasfer evaluate`: the JSON contract of DESIGN.md, split selection, label mapping, contempt, clean errors."""

from __future__ import annotations

import json
import re
from pathlib import Path

import numpy as np
import pytest

from fixtures_config import assert_validation
from fixtures_data import write_class_tree
from fixtures_evaluate import run_cli, save_tiny_checkpoint
from nasfer.cli import main
from nasfer.evaluate import default_split, format_summary, predict_batches
from nasfer.labels import label_index_map
from nasfer.labels import EMOTIONS

REQUIRED = {  # DESIGN.md's evaluate JSON, plus what the brief adds
    "n": int, "labels": list, "accuracy": float, "macro_f1": float, "macro_precision": float, "macro_recall": float,
    "weighted_f1": float, "per_class": dict, "confusion": list, "roc_auc": dict, "ece": float, "top2_accuracy": float,
    "skipped": int, "skipped_examples": list, "dataset": dict, "split": str, "model": dict, "notes": list,
    "tta": bool, "seconds": float, "images_per_second": float,
}


def check_schema(report: dict, labels=EMOTIONS) -> None:
    for key, tp in REQUIRED.items():
        assert key in report, key
        assert isinstance(report[key], tp), (key, type(report[key]))
    assert "contempt" in report
    assert report["labels"] == list(labels)
    assert set(report["per_class"]) == set(labels) == set(report["roc_auc"])
    for pc in report["per_class"].values():
        assert set(pc) == {"precision", "recall", "f1", "support"} and isinstance(pc["support"], int)
    assert sum(pc["support"] for pc in report["per_class"].values()) == report["n"]
    cm = np.array(report["confusion"])
    assert cm.shape == (len(labels), len(labels)) and cm.sum() == report["n"]
    assert [pc["support"] for pc in report["per_class"].values()] == cm.sum(1).tolist()  # rows = truth
    assert all(v is None or 0.0 <= v <= 1.0 for v in report["roc_auc"].values())
    assert {"path", "name"} <= set(report["model"])
    json.dumps(report, allow_nan=False)


# ---------------------------------------------------------------------------- the contract


def test_pt_checkpoint_json_file_and_plots(capsys, tmp_path, folder, checkpoint):
    code, out, _ = run_cli(capsys, "--data", folder, "--model", checkpoint, "--json", tmp_path / "r.json",
                           "--plots", tmp_path / "figs", "--batch-size", 5)
    assert code == 0
    report = json.loads((tmp_path / "r.json").read_text())
    check_schema(report)
    assert report["split"] == "test" and report["n"] == 21  # default split: the test folder
    assert report["skipped"] == 1 and "broken.png" in report["skipped_examples"][0]
    assert report["model"]["format"] == "checkpoint" and report["model"]["name"] == "vgg"
    assert report["contempt"] is None and report["tta"] is False
    assert report["command"].startswith("nasfer evaluate --data ") and "--batch-size 5" in report["command"]
    for name in ("confusion.png", "roc.png", "reliability.png"):
        assert (tmp_path / "figs" / name).read_bytes()[:4] == b"\x89PNG"
    assert "accuracy" in out and "macro-F1" in out  # the summary is still printed with --json FILE


def test_json_dash_writes_only_json_to_stdout(capsys, folder, checkpoint):
    code, out, _ = run_cli(capsys, "--data", folder, "--model", checkpoint, "--json", "-", "--tta")
    assert code == 0
    report = json.loads(out)
    check_schema(report)
    assert report["tta"] is True


def test_summary_table_without_json(capsys, folder, checkpoint):
    code, out, _ = run_cli(capsys, "--data", folder, "--model", checkpoint)
    assert code == 0
    assert "precision" in out and "recall" in out and "support" in out and "accuracy" in out
    for label in EMOTIONS:
        assert label in out
    with pytest.raises(json.JSONDecodeError):
        json.loads(out)


@pytest.mark.parametrize("split, n, name", [("train", 14, "train"), ("TRAIN", 14, "train"), ("test", 21, "test"),
                                           ("all", 35, "test+train")])
def test_split_selection(capsys, folder, checkpoint, split, n, name):
    """The report names the split by the dataset's own split names (what a record is stored under), and
    the request when it was spelled otherwise."""
    code, out, _ = run_cli(capsys, "--data", folder, "--model", checkpoint, "--split", split, "--json", "-")
    assert code == 0
    report = json.loads(out)
    assert report["n"] == n and report["split"] == name
    assert report.get("split_requested", name) == split


def test_official_split_names_case_insensitive(capsys, kaggle_zip, checkpoint):
    code, out, _ = run_cli(capsys, "--data", kaggle_zip, "--model", checkpoint, "--json", "-")
    assert code == 0 and json.loads(out)["split"] == "PublicTest" and json.loads(out)["n"] == 7
    code, out, _ = run_cli(capsys, "--data", kaggle_zip, "--model", checkpoint, "--json", "-", "--split", "privatetest")
    assert code == 0 and json.loads(out)["n"] == 7
    assert json.loads(out)["dataset"]["format"] == "fer2013"


def test_split_file_scores_the_validation_images_a_run_held_out(capsys, tmp_path, folder, checkpoint):
    from nasfer.data import read_dataset
    from nasfer.data.splits import sample_keys, write_split_file

    data = read_dataset(folder)
    keys = sample_keys(data.sources, str(folder))
    roles = np.where(np.arange(len(keys)) % 7 == 0, "val", "train")
    split_file = tmp_path / "splits.json"
    write_split_file(split_file, keys, roles)
    code, out, _ = run_cli(capsys, "--data", folder, "--model", checkpoint, "--split-file", split_file,
                           "--split", "val", "--json", "-")
    assert code == 0
    report = json.loads(out)
    assert report["split"] == "val" and report["n"] == int((roles == "val").sum())
    write_split_file(split_file, keys[1:], roles[1:])  # a split written for another dataset
    code, _, err = run_cli(capsys, "--data", folder, "--model", checkpoint, "--split-file", split_file, "--split", "val")
    assert code == 2 and "not in it" in err


def test_unknown_split_is_a_clean_error(capsys, folder, checkpoint):
    code, _, err = run_cli(capsys, "--data", folder, "--model", checkpoint, "--split", "PrivateTest")
    assert code == 2 and "nasfer evaluate: error:" in err and "not found" in err and "--split-file" not in err
    code, _, err = run_cli(capsys, "--data", folder, "--model", checkpoint, "--split", "val")  # a run's role
    assert code == 2 and "not found" in err and "add --split-file RUN/splits.json" in err


# ---------------------------------------------------------------------------- errors


def test_bad_model_paths_exit_2_without_traceback(capsys, tmp_path, folder):
    code, out, err = run_cli(capsys, "--data", folder, "--model", tmp_path / "missing.onnx")
    assert code == 2 and "nasfer evaluate: error:" in err and "missing.onnx" in err and out == ""
    (tmp_path / "junk.pt").write_bytes(b"junk")
    code, _, err = run_cli(capsys, "--data", folder, "--model", tmp_path / "junk.pt")
    assert code == 2 and "not a readable checkpoint" in err
    (tmp_path / "model.h5").write_bytes(b"junk")
    code, _, err = run_cli(capsys, "--data", folder, "--model", tmp_path / "model.h5")
    assert code == 2 and "unknown model type" in err


def test_strict_fails_on_the_first_bad_image(capsys, folder, checkpoint):
    code, _, err = run_cli(capsys, "--data", folder, "--model", checkpoint, "--strict")
    assert code == 2 and "broken.png" in err


def test_missing_data_exits_2(capsys, tmp_path, checkpoint):
    code, _, err = run_cli(capsys, "--model", checkpoint)
    assert code == 2 and "--data is required" in err
    code, _, err = run_cli(capsys, "--data", tmp_path / "nowhere", "--model", checkpoint)
    assert code == 2 and "not found" in err


# ---------------------------------------------------------------------------- labels


def test_label_index_map_by_name_and_synonym():
    assert label_index_map(["anger", "SADNESS", "bored", "happy"], ["angry", "sad", "happy"]).tolist() == [0, 1, -1, 2]
    assert label_index_map(["contempt", "neutral"], ["neutral", "contempt"]).tolist() == [1, 0]


def test_custom_label_model_is_scored_on_its_labels(capsys, tmp_path, checkpoint):
    data = tmp_path / "three"
    write_class_tree(data, per_class=2, classes=("Happiness", "SAD", "neutral"))
    model = save_tiny_checkpoint(tmp_path / "three.pt", labels=("happy", "sad", "neutral"))
    code, out, _ = run_cli(capsys, "--data", data, "--model", model, "--json", "-")
    assert code == 0
    report = json.loads(out)
    check_schema(report, labels=("happy", "sad", "neutral"))
    assert report["n"] == 6 and report["split"] == "all"
    # a canonical 7-class model scores the same folder: absent classes have support 0 and AUC null
    code, out, _ = run_cli(capsys, "--data", data, "--model", checkpoint, "--json", "-")
    report = json.loads(out)
    assert report["per_class"]["angry"]["support"] == 0 and report["roc_auc"]["angry"] is None


def test_dataset_label_the_model_lacks_is_a_clear_error(capsys, tmp_path, folder):
    model = save_tiny_checkpoint(tmp_path / "three.pt", labels=("happy", "sad", "neutral"))
    code, _, err = run_cli(capsys, "--data", folder, "--model", model)
    assert code == 2 and "has no label for" in err and "'angry' (3 images)" in err and "happy, sad, neutral" in err


def test_ckplus_contempt_policy_is_stated(capsys, ckplus_dir, checkpoint):
    code, out, _ = run_cli(capsys, "--data", ckplus_dir, "--model", checkpoint, "--json", "-")
    report = json.loads(out)
    assert code == 0 and report["contempt"] == "exclude" and report["n"] == 36
    assert any("contempt" in note for note in report["notes"])
    assert report["per_class"]["neutral"]["support"] == 0 and report["dataset"]["format"] == "ckplus"
    code, out, _ = run_cli(capsys, "--data", ckplus_dir, "--model", checkpoint, "--json", "-", "--contempt", "neutral")
    report = json.loads(out)
    assert report["contempt"] == "neutral" and report["n"] == 42 and report["per_class"]["neutral"]["support"] == 6


def test_ckplus_model_with_its_own_contempt_label(capsys, tmp_path, ckplus_dir):
    labels = ("anger", "contempt", "disgust", "fear", "happy", "sadness", "surprise")
    model = save_tiny_checkpoint(tmp_path / "ck.pt", labels=labels)
    code, out, _ = run_cli(capsys, "--data", ckplus_dir, "--model", model, "--json", "-")
    report = json.loads(out)
    assert code == 0 and report["contempt"] == "model" and report["n"] == 42
    assert report["per_class"]["contempt"]["support"] == 6


# ---------------------------------------------------------------------------- pieces


def test_default_split():
    assert default_split(["PrivateTest", "PublicTest", "Training"]) == "PublicTest"
    assert default_split(["test", "train"]) == "test"
    assert default_split(["all"]) == "all"
    assert default_split(["train", "val"]) == "all"


def test_tta_averages_with_the_mirror_image():
    def predict(x):  # "probability" of class 0 = left-edge brightness, a mirror-sensitive model
        left = x[:, 0, 0].astype(np.float64) / 255.0
        return np.stack([left, 1 - left], axis=1)

    images = np.zeros((5, 4, 4), np.uint8)
    images[:, :, 0] = 255  # bright left edge; mirrored it is on the right
    plain = predict_batches(predict, images, batch_size=2)
    tta = predict_batches(predict, images, batch_size=2, tta=True)
    np.testing.assert_allclose(plain[:, 0], 1.0)
    np.testing.assert_allclose(tta, 0.5)
    assert predict_batches(predict, images[:0], batch_size=2).shape[0] == 0


def test_summary_mentions_skips_and_notes(folder, checkpoint):
    from nasfer.evaluate import EvalConfig, evaluate

    report = evaluate(EvalConfig(data=str(folder), model=str(checkpoint)))
    text = format_summary(report)
    assert "skipped 1" in text and "broken.png" in text


# ---------------------------------------------------------------------------- ONNX and the shipped model


def test_onnx_model_through_the_engine_matches_the_checkpoint(capsys, folder, tiny_onnx, tiny_checkpoint):
    code, out, _ = run_cli(capsys, "--data", folder, "--model", tiny_onnx, "--json", "-", "--tta")
    assert code == 0
    report = json.loads(out)
    check_schema(report, labels=tuple(report["labels"]))
    assert report["model"]["format"] == "onnx" and report["n"] == 21 and report["images_per_second"] > 0
    assert report["tta"] is True and report["builtin_tta"] is None
    from nasfer.evaluate import load_model

    crops = np.random.default_rng(0).integers(0, 256, (5, 48, 48), dtype=np.uint8)
    np.testing.assert_allclose(load_model(str(tiny_onnx)).predict(crops), load_model(str(tiny_checkpoint)).predict(crops),
                               atol=1e-5)


@pytest.fixture(scope="module")
def flip_onnx(tmp_path_factory, tiny_checkpoint) -> Path:
    out = tmp_path_factory.mktemp("flip") / "flip.onnx"
    assert main(["export", "--checkpoint", str(tiny_checkpoint), "--out", str(out), "--tta"]) == 0
    return out


def test_tta_on_a_graph_that_already_mirrors_is_refused(capsys, folder, flip_onnx):
    code, out, err = run_cli(capsys, "--data", folder, "--model", flip_onnx, "--tta")
    assert code == 2 and out == ""
    assert "flip TTA built into its graph" in err and "leave it out" in err
    code, _, err = run_cli(capsys, "--data", folder, "--model", flip_onnx, "--tta", "--ten-crop")
    assert code == 2 and "choose one" in err


def test_ten_crop_on_a_flip_graph_adds_only_the_five_windows(capsys, folder, flip_onnx, tiny_onnx):
    code, out, _ = run_cli(capsys, "--data", folder, "--model", flip_onnx, "--ten-crop", "--json", "-")
    on_flip = json.loads(out)
    code2, out2, _ = run_cli(capsys, "--data", folder, "--model", tiny_onnx, "--ten-crop", "--json", "-")
    plain = json.loads(out2)
    assert code == code2 == 0 and on_flip["builtin_tta"] == "flip" and on_flip["ten_crop"] is True
    assert any("five windows" in note for note in on_flip["notes"])
    # five windows x the graph's mirror = the ten views of the plain model: the same scores
    assert on_flip["accuracy"] == plain["accuracy"] and on_flip["confusion"] == plain["confusion"]
    np.testing.assert_allclose([on_flip["roc_auc"][k] or 0 for k in EMOTIONS],
                               [plain["roc_auc"][k] or 0 for k in EMOTIONS], atol=1e-6)


SHIPPED = Path(__file__).resolve().parents[1] / "src" / "nasfer" / "weights"


@pytest.mark.real_data
@pytest.mark.slow
@pytest.mark.parametrize("name", sorted(p.stem for p in SHIPPED.glob("*.onnx")))
def test_shipped_model_scores_what_its_card_records_on_public_test(capsys, fer2013_zip, name):
    """Every shipped model, one pass per face (TTA only where its graph has it), against its own card."""
    card = json.loads((SHIPPED / f"{name}.json").read_text())
    recorded = card["metrics"]["PublicTest"]
    assert recorded["split"] == "PublicTest" and recorded["n"] == 3589 and recorded["tta"] is False
    assert recorded["recorded"]["command"].startswith("nasfer evaluate ") and "--record" in recorded["recorded"]["command"]
    code, out, _ = run_cli(capsys, "--data", fer2013_zip, "--model", name, "--split", "PublicTest", "--json", "-")
    assert code == 0
    report = json.loads(out)
    check_schema(report, labels=tuple(card["labels"]))
    assert report["n"] == 3589 and report["skipped"] == 0
    # one image is 1/3589 = 0.00028 of accuracy: the card's figures hold to within one image
    assert report["accuracy"] == pytest.approx(recorded["accuracy"], abs=3e-4)
    assert report["macro_f1"] == pytest.approx(recorded["macro_f1"], abs=1e-3)


def test_onnx_route_follows_the_engine_contract(capsys, monkeypatch, tmp_path, folder):
    """The .onnx branch against a stand-in `nasfer.runtime.engine.Classifier` (the real one is tested above)."""
    import sys
    import types

    from nasfer.preprocessing import Preprocessing

    calls = []

    class Classifier:
        def __init__(self, model_path, threads=None):
            calls.append((Path(model_path), threads))
            self.labels = list(reversed(EMOTIONS))  # a different order: mapping must go by name
            self.preprocessing = Preprocessing()
            self.card = {"name": "stand-in"}

        def predict(self, images):
            assert images.dtype == np.uint8 and images.shape[1:] == (48, 48)
            probs = np.full((len(images), 7), 0.01)
            probs[:, self.labels.index("happy")] = 0.94
            return probs.astype(np.float32)

    monkeypatch.setitem(sys.modules, "nasfer.runtime.engine", types.SimpleNamespace(Classifier=Classifier))
    model = tmp_path / "m.onnx"
    model.write_bytes(b"stand-in")
    code, out, _ = run_cli(capsys, "--data", folder, "--model", model, "--json", "-", "--threads", 1)
    assert code == 0 and calls == [(model, 1)]
    report = json.loads(out)
    check_schema(report, labels=tuple(reversed(EMOTIONS)))
    assert report["model"] == {"path": str(model), "name": "stand-in", "format": "onnx"}
    assert report["per_class"]["happy"]["recall"] == 1.0 and report["per_class"]["happy"]["support"] == 3
    assert report["accuracy"] == pytest.approx(3 / 21)


def test_without_model_uses_the_shipped_default(capsys, monkeypatch, tmp_path, folder, checkpoint):
    import nasfer.weights

    monkeypatch.setattr(nasfer.weights, "default_model_path", lambda: checkpoint)
    code, out, _ = run_cli(capsys, "--data", folder, "--json", "-")
    assert code == 0 and json.loads(out)["model"]["path"] == str(checkpoint)
    monkeypatch.setattr(nasfer.weights, "default_model_path", lambda: tmp_path / "gone.onnx")
    code, _, err = run_cli(capsys, "--data", folder)
    assert code == 2 and "gone.onnx" in err and "--model" in err


@pytest.mark.parametrize("kwargs, message", [
    ({"batch_size": 0}, "--batch-size must be at least 1"),
    ({"threads": -1}, "--threads must be 0..1024"),  # before: torch's RuntimeError traceback for a .pt model
    ({"threads": 100_000}, "--threads must be 0..1024"),  # before: hung creating ONNX Runtime's threads
    ({"batch_size": 1, "threads": 1024}, None),  # boundaries are accepted
    ({"threads": 0}, None),
])
def test_config_validation(kwargs, message):
    from nasfer.evaluate import EvalConfig

    cfg = EvalConfig(**kwargs)
    assert_validation(cfg, message)


def test_impossible_threads_are_one_line_for_a_checkpoint(capsys, folder, checkpoint):
    code, out, err = run_cli(capsys, "--data", folder, "--model", checkpoint, "--threads", -1)
    assert code == 2 and err.startswith("nasfer evaluate: error: --threads must be 0..1024") and out == ""


def test_scoring_images_the_model_trained_on_says_so(tmp_path, capsys):
    """Before: `nasfer evaluate --data my_faces --model RUN/best.pt` scored all images, 48 of 60 of them
    training images, with no word about it."""
    data = tmp_path / "my_faces"
    write_class_tree(data, per_class=10, seed=5, classes=("happy", "sad", "neutral"))
    run = tmp_path / "run"
    assert main(["train", "--data", str(data), "--out", str(run), "--arch", "vgg", "--width", "4", "--epochs", "1",
                 "--threads", "1"]) == 0
    capsys.readouterr()
    assert main(["evaluate", "--data", str(data), "--model", str(run / "best.pt")]) == 0
    out = capsys.readouterr().out
    assert re.search(r"note: \d+ of these 30 images trained or selected this model", out) and "--split test" in out
    held_out = ["evaluate", "--data", str(data), "--model", str(run / "best.pt"), "--split-file",
                str(run / "splits.json"), "--split", "test"]
    assert main(held_out) == 0 and "trained or selected" not in capsys.readouterr().out
