"""scripts/member_from_onnx.py: a member of an exported ensemble comes back as a checkpoint that computes what the
member computed (the shipped default's second member survives only in its int8 graph)."""

import json
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from fixtures_models import tiny_model, write_tiny_checkpoint

from nasfer.cli import main as nasfer

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "scripts"))
import dequantize_qdq  # noqa: E402
import member_from_onnx  # noqa: E402

WIDTH = 4


@pytest.fixture(scope="module")
def members(tmp_path_factory):
    """(dir, [member 0, member 1] checkpoints, the template: member 0 with an EMA copy and optimizer state)."""
    from nasfer.checkpoint import load_checkpoint, save_checkpoint

    root = tmp_path_factory.mktemp("members")
    paths = [write_tiny_checkpoint(root / f"m{i}" / "best.pt", seed=i, width=WIDTH) for i in range(2)]
    template = load_checkpoint(paths[0])
    template.update(weights="ema", optimizer={"state": {}}, ema_state_dict=dict(template["state_dict"]), epoch=98,
                    metrics={"val_accuracy": 0.123}, history=[{"epoch": 1}])
    save_checkpoint(root / "template.pt", template)
    return root, paths, root / "template.pt"


def ensemble_onnx(root, paths, tta=True):
    from nasfer.export import ExportConfig, export_checkpoint

    out = root / ("ens-tta.onnx" if tta else "ens.onnx")
    if not out.exists():
        assert nasfer(["ensemble", "--checkpoints", *map(str, paths), "--out", str(root / "ens.pt")]) == 0
        export_checkpoint(ExportConfig(checkpoint=str(root / "ens.pt"), out=str(out), tta=tta))
    return out


def pass_per_view_onnx(root, paths):
    """The ensemble exported as the shipped default was: flip TTA as a second pass over the mirror image."""
    from nasfer.checkpoint import load_model
    from nasfer.models.ensemble import Ensemble

    nets = [load_model(p)[0] for p in paths]
    ens = Ensemble([{"name": "vgg", "kwargs": {"width": WIDTH}}] * 2, [0.6, 0.4])
    for mine, theirs in zip(ens.members, nets):
        mine.load_state_dict(theirs.state_dict())

    class TwoPasses(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.net = ens

        def forward(self, x):
            return (torch.softmax(self.net(x), 1) + torch.softmax(self.net(torch.flip(x, dims=[3])), 1)) / 2

    out = root / "two-passes.onnx"
    torch.onnx.export(TwoPasses().eval(), (torch.zeros(2, 1, 48, 48),), str(out), opset_version=17, dynamo=False,
                      input_names=["input"], output_names=["probs"], dynamic_axes={"input": {0: "n"}})
    return out


def outputs(model, seed=3, logits=False):
    """Probabilities (or logits) of `model` on random inputs and their mirror images."""
    x = torch.randn(12, 1, 48, 48, generator=torch.Generator().manual_seed(seed)) * 1.5
    with torch.no_grad():
        return torch.cat([model(v) if logits else torch.softmax(model(v), 1) for v in (x, torch.flip(x, dims=[3]))]).numpy()


@pytest.mark.parametrize("form", ["flip TTA, one pass", "no TTA", "a pass per view"])
def test_member_1_comes_back_and_is_not_member_0(members, tmp_path, form):
    from nasfer.checkpoint import load_model

    root, paths, template = members
    graph = {"flip TTA, one pass": lambda: ensemble_onnx(root, paths),
             "no TTA": lambda: ensemble_onnx(root, paths, tta=False),
             "a pass per view": lambda: pass_per_view_onnx(root, paths)}[form]()
    out = tmp_path / "member1.pt"
    assert member_from_onnx.main([str(graph), "--template", str(template), "--member", "1", "--out", str(out)]) == 0
    model, ckpt = load_model(out)  # what nasfer evaluate / ensemble / export build from it
    got, want, other = outputs(model), outputs(tiny_model(1, width=WIDTH)), outputs(tiny_model(0, width=WIDTH))
    assert np.abs(got - want).max() < 1e-4
    assert np.abs(got - other).max() > 1e-2  # not member 0, the template's own weights
    assert not {"optimizer", "ema_state_dict", "history"} & set(ckpt)  # nothing of the template's run
    card = json.loads(graph.with_suffix(".json").read_text()) if graph.with_suffix(".json").is_file() else {}
    own = ((card.get("training") or {}).get("members") or [None, None])[1]
    if own is None:  # no card beside the graph: nothing is known of the member's run
        assert not {"weights", "metrics", "epoch"} & set(ckpt)
    else:  # the member's own run, as its ensemble's card recorded it (not the template's epoch 99 and 0.123)
        assert ckpt["epoch"] == own["best_epoch"] - 1 and ckpt["metrics"] == {"val_accuracy": own["val_accuracy"]}
        assert ckpt.get("weights") == own["weights"]
    record = ckpt["recovered_from"]
    assert record["member"] == 1 and record["members"] == 2 and record["file"] == graph.name
    assert record["check"]["max_abs_diff"] < 1e-4 and "--member 1" in record["command"]
    bn = model.features[0][1]
    assert torch.all(bn.weight == 1) and torch.all(bn.running_mean == 0)


def test_a_member_of_an_int8_graph_comes_back_through_its_fp32_graph(members, tmp_path, kaggle_zip):
    from nasfer.checkpoint import load_model

    root, paths, template = members
    int8 = tmp_path / "int8" / "ens.onnx"
    int8.parent.mkdir()
    assert nasfer(["export", "--quantize", "int8", "--onnx", str(ensemble_onnx(root, paths)), "--calibration-data",
                   str(kaggle_zip), "--out", str(int8), "--calibration-images", "10", "--max-accuracy-drop", "100"]) == 0
    with pytest.raises(SystemExit, match="a quantized graph; make it fp32 first"):
        member_from_onnx.main([str(int8), "--template", str(template), "--member", "1", "--out", str(tmp_path / "x.pt")])
    fp32 = tmp_path / "fp32" / "ens.onnx"
    assert dequantize_qdq.main([str(int8), str(fp32)]) == 0
    out = tmp_path / "member1.pt"
    assert member_from_onnx.main([str(fp32), "--template", str(template), "--member", "1", "--out", str(out)]) == 0
    model, ckpt = load_model(out)
    got, want, other = (outputs(m, logits=True) for m in (model, tiny_model(1, width=WIDTH), tiny_model(0, width=WIDTH)))
    assert np.abs(got - want).max() < 0.2 * np.abs(got - other).max()  # member 1 less int8 weight rounding
    card = json.loads(fp32.with_suffix(".json").read_text())
    assert ckpt["config"] == card["training"]["config"]["members"][1]  # the member's own config, from the card
    assert ckpt["recovered_from"]["dequantized_from"]["file"] == "ens.onnx"
    assert ckpt["recovered_from"]["check"]["max_abs_diff"] < 1e-4

    # the check compares with the graph less its activation ranges: far outside them the two graphs differ
    import onnx

    graph = onnx.load(str(fp32))
    softmaxes = [p[1] for p in member_from_onnx.find_members(graph.graph)[1]]
    x = np.random.default_rng(0).standard_normal((8, 1, 48, 48)).astype(np.float32) * 20
    assert member_from_onnx.check(model, member_from_onnx.unclamped(graph, softmaxes), softmaxes, x) < 1e-4
    assert member_from_onnx.check(model, graph, softmaxes, x) > 1e-3


def test_a_wrong_mapping_fails_the_check_and_writes_nothing(members, tmp_path, monkeypatch):
    root, paths, template = members
    load = member_from_onnx.load_member

    def swapped(model, convs, *rest):  # the last two convolutions' BatchNorms (same width) given the wrong bias
        load(model, convs, *rest)
        with torch.no_grad():
            a, b = convs[-1][1].bias, convs[-2][1].bias
            a.copy_(b.clone())

    monkeypatch.setattr(member_from_onnx, "load_member", swapped)
    out = tmp_path / "member1.pt"
    with pytest.raises(SystemExit, match="check failed"):
        member_from_onnx.main([str(ensemble_onnx(root, paths)), "--template", str(template), "--member", "1",
                               "--out", str(out)])
    assert not out.exists()


def test_refusals(members, tmp_path, tiny_onnx):
    root, paths, template = members
    graph, out = str(ensemble_onnx(root, paths)), str(tmp_path / "out.pt")
    cases = [
        ([str(tiny_onnx), "--template", str(template), "--member", "0"], "not an ensemble graph"),
        ([graph, "--template", str(template), "--member", "2"], r"--member 2: out of range; the ensemble has 2"),
        ([graph, "--template", str(template), "--member", "-1"], "out of range"),
        ([graph, "--template", str(write_tiny_checkpoint(tmp_path / "w8.pt", width=8)), "--member", "0"],
         "template architecture mismatch at convolution 0"),
        ([graph, "--template", str(root / "ens.pt"), "--member", "0"], "an ensemble; the template must be"),
    ]
    for argv, message in cases:
        with pytest.raises(SystemExit, match=message):
            member_from_onnx.main([*argv, "--out", out])
        assert not Path(out).exists()
    with pytest.raises(SystemExit, match="would replace the template"):
        member_from_onnx.main([graph, "--template", str(template), "--member", "0", "--out", str(template)])


def test_an_ensemble_over_a_recovered_member_says_so_in_its_card(members, tmp_path):
    """The card of an ensemble built on a recovered member keeps that member's run (best epoch, EMA or raw,
    validation accuracy) and where its weights came from, beside the members trained the usual way."""
    from nasfer.card import training_info
    from nasfer.checkpoint import load_checkpoint

    root, paths, template = members
    out = tmp_path / "m1" / "weights.pt"
    out.parent.mkdir()
    assert member_from_onnx.main([str(ensemble_onnx(root, paths)), "--template", str(template), "--member", "1",
                                  "--out", str(out)]) == 0
    assert nasfer(["ensemble", "--checkpoints", str(paths[0]), str(out), "--out", str(tmp_path / "ens.pt")]) == 0
    recorded = training_info(load_checkpoint(tmp_path / "ens.pt"))["members"]
    assert "recovered_from" not in recorded[0]
    assert recorded[1]["recovered_from"]["member"] == 1 and recorded[1]["recovered_from"]["file"] == "ens-tta.onnx"
    own = load_checkpoint(out)
    assert recorded[1]["best_epoch"] == own["epoch"] + 1 and recorded[1]["val_accuracy"] == own["metrics"]["val_accuracy"]
