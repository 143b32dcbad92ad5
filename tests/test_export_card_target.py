"""`nasfer export` writes the model card beside --out (same stem, .json): never over a JSON file that is no card.

User review: `nasfer export --checkpoint runs/m1/best.pt --out runs/m1/config.onnx` replaced the run's
config.json with the model card (and `test.onnx` would replace test.json, `history.onnx` history.json): the
run's settings were lost without a word.
"""

from __future__ import annotations

import json

import pytest

from fixtures_evaluate import save_tiny_checkpoint
from nasfer.cli import main


@pytest.mark.parametrize("stem", ["config", "test", "history"])
def test_export_refuses_to_write_its_card_over_a_run_file(tmp_path, capsys, stem):
    run = tmp_path / "run"
    run.mkdir()
    ckpt = save_tiny_checkpoint(run / "best.pt")
    kept = run / f"{stem}.json"
    kept.write_text(json.dumps({"train": {"epochs": 2}}))
    assert main(["export", "--checkpoint", str(ckpt), "--out", str(run / f"{stem}.onnx")]) == 2
    err = capsys.readouterr().err
    assert f"{kept}" in err and "not a model card" in err and "Traceback" not in err, err
    assert json.loads(kept.read_text()) == {"train": {"epochs": 2}} and not (run / f"{stem}.onnx").exists()


def test_export_replaces_its_own_earlier_card(tmp_path, capsys):
    ckpt = save_tiny_checkpoint(tmp_path / "best.pt")
    argv = ["export", "--checkpoint", str(ckpt), "--out", str(tmp_path / "model.onnx")]
    assert main(argv) == 0 and main([*argv, "--name", "again"]) == 0
    assert json.loads((tmp_path / "model.json").read_text())["name"] == "again"
