"""The shipped model cards: generated fields only, the protocol's record, and the README printing their commands."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from nasfer.card import reproduce_commands

ROOT = Path(__file__).resolve().parents[1]
SHIPPED = sorted((ROOT / "src" / "nasfer" / "weights").glob("*.json"))


def readme_block(name: str) -> list[str]:
    """The lines of the fenced block that follows `<!-- commands: NAME -->` in the README."""
    text = (ROOT / "README.md").read_text()
    match = re.search(rf"<!-- commands: {re.escape(name)} -->\s*```(?:bash)?\n(.*?)```", text, re.S)
    assert match, f"README has no <!-- commands: {name} --> block"
    return [line for line in match.group(1).splitlines() if line.strip()]


@pytest.mark.parametrize("card_path", SHIPPED, ids=lambda p: p.stem)
def test_readme_prints_the_cards_commands_verbatim(card_path):
    card = json.loads(card_path.read_text())
    commands = reproduce_commands(card)
    assert readme_block(card_path.stem) == commands


@pytest.mark.parametrize("card_path", SHIPPED, ids=lambda p: p.stem)
def test_card_holds_generated_fields_and_one_recorded_test_score(card_path):
    card = json.loads(card_path.read_text())
    training = card["training"]
    assert "note" not in training and "epochs" not in training  # no hand-written or ambiguous fields
    assert {"best_epoch", "scheduled_epochs", "epochs_completed", "completed"} <= set(training)
    if training["best_epoch"] is not None and training["scheduled_epochs"] is not None:
        assert 1 <= training["best_epoch"] <= training["scheduled_epochs"]
    if training["completed"] is not None:
        assert training["completed"] == (training["epochs_completed"] >= training["scheduled_epochs"])
    assert training["commands"] and all(c.startswith("nasfer ") for c in training["commands"])
    assert card["export"]["command"].startswith("nasfer export ")
    recorded = card["metrics"]["PublicTest"]["recorded"]
    assert recorded["date"] and "--split PublicTest" in recorded["command"] and "--record" in recorded["command"]
    if card.get("quantization"):
        parity = card["quantization"]["parity"]
        assert parity["split"] == "validation" and parity["accuracy_drop_points"] <= parity["max_drop_points"]


def test_card_names_the_distillation_teacher_without_local_paths():
    from nasfer.card import training_info

    distillation = {"kind": "onnx", "path": "/home/me/models/teacher.onnx", "sha256": "ab" * 32,
                    "alpha": 0.5, "temperature": 4.0}
    ckpt = {"config": {"train": {"teacher": "/home/me/models/teacher.onnx", "out": "/home/me/runs/x"},
                       "data": {"data": "/data/fer2013.zip"}, "distillation": distillation},
            "metrics": {"val_accuracy": 0.6}, "history": []}
    info = training_info(ckpt)
    assert info["teacher"]["path"] == "teacher.onnx" and info["teacher"]["sha256"] == "ab" * 32
    assert info["teacher"]["alpha"] == 0.5 and info["teacher"]["temperature"] == 4.0
    assert "/home/me" not in json.dumps(info)


def test_a_card_of_a_model_trained_on_other_data_says_so():
    """Before: every card said 'Trained on FER2013' and how to score it on fer2013.zip."""
    from nasfer.card import LIMITATIONS, evaluation_commands, limitations, training_info

    fer = {"config": {"data": {"data": "/x/fer2013.zip"}, "train": {}}}
    assert limitations(fer) == LIMITATIONS and "fer2013" in evaluation_commands("m.onnx", "fer2013.zip")
    own = {"config": {"data": {"data": "/home/me/shop-faces"}, "train": {"split_file": "/home/me/runs/a/splits.json"}}}
    text = limitations(own)
    assert text[0].startswith("Trained on shop-faces, not FER2013") and "web-scraped" not in " ".join(text)
    assert evaluation_commands("m.onnx", "shop-faces") == {
        "own_data": "nasfer evaluate --data shop-faces --model m.onnx --json metrics.json "
                    "(its test split: a folder named test, else everything)"}
    tuned = {"config": {"data": {"data": "/home/me/shop-faces"}, "train": {"init_from": "/w/default.onnx"}}}
    assert "starting from default.onnx (trained on FER2013)" in limitations(tuned)[0]
    assert any("web-scraped" in item for item in limitations(tuned))
    # split files keep their run directory: every run's is called splits.json
    assert training_info(own)["config"]["train"]["split_file"] == "a/splits.json"


def test_the_card_of_a_model_trained_from_an_architecture_file_does_not_name_the_unused_arch():
    """Before: a searched model's card said `arch: "vgg"` (the flag's unused default) beside its genotype."""
    from nasfer.card import training_info

    ckpt = {"config": {"train": {"arch": "vgg", "genotype": "/runs/search/best_arch.json", "out": "/runs/x"},
                       "data": {"data": "/data/fer2013.zip"}}, "metrics": {}, "history": []}
    info = training_info(ckpt)
    assert info["config"]["train"]["arch"] is None and info["config"]["train"]["genotype"] == "best_arch.json"
    assert ckpt["config"]["train"]["arch"] == "vgg"  # the checkpoint itself is not changed
    assert info["commands"] == ["nasfer train --data fer2013.zip --genotype best_arch.json --out x"]
    member = {"train": {"arch": "vgg", "genotype": "/runs/a/best_arch.json"}, "data": {"data": "/d/fer2013.zip"}}
    ensemble = {"config": {"members": [member, {"train": {"arch": "vgg", "width": 32}}]}, "metrics": {}, "history": []}
    members = training_info(ensemble)["config"]["members"]
    assert members[0]["train"]["arch"] is None and members[1]["train"]["arch"] == "vgg"
    plain = {"config": {"train": {"arch": "vgg", "genotype": None, "width": 16}}, "metrics": {}, "history": []}
    assert training_info(plain)["config"]["train"]["arch"] == "vgg"
