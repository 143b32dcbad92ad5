"""Ensemble selection on validation images: the greedy algorithm, weighted ensembles, and `nasfer ensemble
--select greedy` end to end on small generated data (members trained with one split file)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch

from fixtures_config import assert_validation

from nasfer.selection import greedy_selection, validation_score


def one_hot(pred: np.ndarray, k: int = 3, sure: float = 0.8) -> np.ndarray:
    p = np.full((len(pred), k), (1 - sure) / (k - 1))
    p[np.arange(len(pred)), pred] = sure
    return p


def test_validation_score():
    y = np.array([0, 1, 2, 1])
    acc, nll = validation_score(one_hot(np.array([0, 1, 2, 0])), y)
    assert acc == 0.75 and nll == pytest.approx(-(3 * np.log(0.8) + np.log(0.1)) / 4)


def test_greedy_selection_drops_a_useless_member_and_mixes_complementary_ones():
    rng = np.random.default_rng(0)
    y = rng.integers(0, 3, 300)
    a, b, c = y.copy(), y.copy(), y.copy()
    a[:100] = (y[:100] + 1) % 3  # each is wrong on a different third: any two of them outvote the third
    b[100:200] = (y[100:200] + 1) % 3
    c[200:] = (y[200:] + 1) % 3
    noise = rng.integers(0, 3, 300)  # chance level
    probs = np.stack([one_hot(a), one_hot(noise), one_hot(b), one_hot(c)])
    w = greedy_selection(probs, y, rounds=10)
    assert w.shape == (4,) and w.sum() == pytest.approx(1.0) and w[1] == 0.0 and min(w[[0, 2, 3]]) > 0
    mixed = validation_score(np.tensordot(w, probs, axes=1), y)[0]
    assert mixed > max(validation_score(p, y)[0] for p in probs)
    assert np.array_equal(w, greedy_selection(probs, y, rounds=10))  # deterministic


def test_greedy_selection_can_cap_the_distinct_members():
    """--max-members: each distinct member costs a forward pass per face; the cap keeps the cheapest
    ensemble of at most that many, the others are never added."""
    rng = np.random.default_rng(1)
    y = rng.integers(0, 3, 300)
    members = []
    for third in range(3):  # each wrong on its own third: the uncapped selection takes all three
        p = y.copy()
        p[100 * third:100 * (third + 1)] = (y[100 * third:100 * (third + 1)] + 1) % 3
        members.append(one_hot(p))
    probs = np.stack(members)
    assert np.count_nonzero(greedy_selection(probs, y, rounds=10)) == 3
    capped = greedy_selection(probs, y, rounds=10, max_members=2)
    assert np.count_nonzero(capped) == 2 and capped.sum() == pytest.approx(1.0)
    assert np.array_equal(greedy_selection(probs, y, rounds=10, max_members=3), greedy_selection(probs, y, rounds=10))
    assert greedy_selection(probs, y, rounds=10, max_members=1).tolist() == [1.0, 0.0, 0.0]  # the best single one
    with pytest.raises(ValueError, match="max_members"):
        greedy_selection(probs, y, max_members=-1)


def test_greedy_selection_keeps_the_best_single_member_when_mixing_does_not_help():
    y = np.array([0, 1, 2, 0, 1, 2])
    good, bad = one_hot(y), one_hot((y + 1) % 3)
    assert greedy_selection(np.stack([bad, good]), y, rounds=5).tolist() == [0.0, 1.0]
    with pytest.raises(ValueError, match="expected probabilities"):
        greedy_selection(good, y)
    with pytest.raises(ValueError, match="rounds"):
        greedy_selection(np.stack([good]), y, rounds=-1)


def test_greedy_selection_climbs_on_log_likelihood_not_on_single_images():
    """A member that is right on one more image but overconfidently wrong elsewhere wins on accuracy alone;
    the log-likelihood climb does not hand it a weight for that one image."""
    y = np.array([0, 1, 2] * 20)
    calm = one_hot(y, sure=0.6)
    calm[0] = [0.40, 0.45, 0.15]  # wrong on image 0, narrowly
    brash = calm.copy()
    brash[0] = [0.90, 0.05, 0.05]  # right on image 0 ...
    for i in range(1, 11):  # ... and wrong on ten others, which calm still carries in the mix
        brash[i] = np.roll([0.34, 0.36, 0.30], y[i])
    mixed = (calm + brash) / 2
    assert validation_score(mixed, y)[0] > validation_score(calm, y)[0]  # accuracy would take brash in
    assert validation_score(mixed, y)[1] > validation_score(calm, y)[1]  # its log-likelihood is worse
    assert greedy_selection(np.stack([calm, brash]), y, rounds=5).tolist() == [1.0, 0.0]


def test_weighted_ensemble_averages_with_its_weights():
    from nasfer.models import create_model

    members = [{"name": "vgg", "kwargs": {"width": 4}}, {"name": "vgg", "kwargs": {"width": 6}}]
    torch.manual_seed(0)
    ens = create_model("ensemble", members=members, weights=[3.0, 1.0]).eval()
    x = torch.randn(2, 1, 48, 48)
    with torch.no_grad():
        parts = [torch.softmax(m(x), 1) for m in ens.members]
        assert torch.allclose(torch.softmax(ens(x), 1), 0.75 * parts[0] + 0.25 * parts[1], atol=1e-6)
    with pytest.raises(ValueError, match="positive"):
        create_model("ensemble", members=members, weights=[1.0, 0.0])


@pytest.mark.slow
def test_nasfer_ensemble_selects_on_validation_and_records_it(learnable_folder, tmp_path, capsys, monkeypatch):
    from nasfer.checkpoint import load_checkpoint
    from nasfer.cli import main
    from nasfer.config import DataConfig, TrainConfig
    from nasfer.export import training_info
    from nasfer.train import fit

    data = DataConfig(data=str(learnable_folder))
    base = dict(arch="vgg", width=8, batch_size=32, lr=5e-3, val_fraction=0.2, rotation=0.0, scale=0.0, crop_padding=2)
    first = fit(TrainConfig(epochs=3, out=str(tmp_path / "a"), seed=1, **base), data, progress=False)
    split = str(first / "splits.json")
    fit(TrainConfig(epochs=3, out=str(tmp_path / "b"), seed=2, split_file=split, **base), data, progress=False)
    fit(TrainConfig(epochs=1, out=str(tmp_path / "c"), seed=3, split_file=split, lr=1e-6,
                    **{k: v for k, v in base.items() if k != "lr"}), data, progress=False)  # barely trained
    ckpts = [str(tmp_path / n / "best.pt") for n in "abc"]
    out = tmp_path / "ens.pt"
    argv = ["ensemble", "--checkpoints", *ckpts, "--select", "greedy", "--data", str(learnable_folder),
            "--rounds", "8", "--max-members", "2", "--out", str(out)]
    import nasfer.selection

    real = nasfer.selection.greedy_selection
    seen = {}

    def chosen_weights(probs, y, rounds, max_members):  # the algorithm is tested above; here: what the command does
        seen.update(shape=probs.shape, rounds=rounds, max_members=max_members, real=real(probs, y, rounds))
        return np.array([0.0, 1.0, 0.0]) if "alone" in seen else np.array([0.75, 0.25, 0.0])

    monkeypatch.setattr(nasfer.selection, "greedy_selection", chosen_weights)
    assert main(argv) == 0
    printed = capsys.readouterr().out
    assert printed.count("validation accuracy") == 3 and "greedy selection" in printed
    assert seen["shape"][0] == 3 and seen["shape"][2] == 7 and seen["rounds"] == 8 and seen["max_members"] == 2
    ckpt = load_checkpoint(out)
    selection = ckpt["config"]["selection"]
    weights = ckpt["model"]["kwargs"]["weights"]
    chosen = [c for c in selection["candidates"] if c["weight"] > 0]
    assert [c["checkpoint"] for c in chosen] == ["a/best.pt", "b/best.pt"] and weights == [0.75, 0.25]
    assert len(ckpt["model"]["kwargs"]["members"]) == 2 and selection["n_val"] == seen["shape"][1] > 0
    assert all(0.0 <= c["val_accuracy"] <= 1.0 and c["val_nll"] > 0 for c in selection["candidates"])
    assert selection["val_nll_selected"] > 0 and selection["val_nll_equal_mean"] > 0 and "log-loss" in printed
    seen["alone"] = True  # one member better alone: nothing written, and it says so
    assert main([*argv[:-1], str(tmp_path / "alone.pt")]) == 1
    assert "kept only" in capsys.readouterr().out and not (tmp_path / "alone.pt").exists()
    monkeypatch.setattr(nasfer.selection, "greedy_selection", real)
    info = training_info(ckpt)
    assert info["selection"]["validation_split"] == "a/splits.json"
    assert "selection" not in info["config"]  # recorded once in the card (it was under config too)
    assert "--select greedy" in info["commands"][-1] and "a/best.pt b/best.pt c/best.pt" in info["commands"][-1]
    assert "--split-file a/splits.json" in info["commands"][-1] and info["commands"][-1].endswith("--out ens.pt")
    assert "--rounds 8 --max-members 2" in info["commands"][-1] and selection["max_members"] == 2

    # one cap after another with a shared dict (benchmarks/default_candidates.py): each member is scored once per
    # TTA setting, and the ensembles are the ones the command writes (before: every cap scored every member again)
    import nasfer.evaluate
    from nasfer.commands.ensemble import EnsembleConfig, write_ensemble

    calls = []
    monkeypatch.setattr(nasfer.selection, "greedy_selection",
                        lambda probs, y, rounds, max_members: np.array([0.5, 0.5, 0.0]))
    real_predict = nasfer.evaluate.predict_split
    monkeypatch.setattr(nasfer.evaluate, "predict_split",
                        lambda cfg, **kw: calls.append(cfg.model) or real_predict(cfg, **kw))
    shared = {}
    for cap, tta in ((2, True), (3, True), (2, False)):
        cfg = EnsembleConfig(checkpoints=ckpts, out=str(tmp_path / f"k{cap}{tta}.pt"), select="greedy",
                             data=str(learnable_folder), max_members=cap, tta=tta).validate()
        assert write_ensemble(cfg, lambda line: None, shared) == 0
    assert sorted(calls) == sorted(ckpts * 2) and len(shared) == 6  # 3 members x (TTA, no TTA), not 3 x 3 caps
    assert main(["ensemble", "--checkpoints", *ckpts, "--select", "greedy", "--data", str(learnable_folder),
                 "--max-members", "3", "--out", str(tmp_path / "cli.pt")]) == 0 and len(calls) == 9
    reused, fresh = (load_checkpoint(tmp_path / name)["config"]["selection"] for name in ("k3True.pt", "cli.pt"))
    assert [c["val_nll"] for c in reused["candidates"]] == [c["val_nll"] for c in fresh["candidates"]]
    assert reused["val_nll_selected"] == fresh["val_nll_selected"]  # the kept predictions are the same scores
    monkeypatch.setattr(nasfer.evaluate, "predict_split", real_predict)
    monkeypatch.setattr(nasfer.selection, "greedy_selection", real)
    capsys.readouterr()

    # a member trained on its own split saw validation images of the first one's: refused
    fit(TrainConfig(epochs=1, out=str(tmp_path / "d"), seed=9, **base), data, progress=False)
    assert main(["ensemble", "--checkpoints", ckpts[0], str(tmp_path / "d" / "best.pt"), "--select", "greedy",
                 "--data", str(learnable_folder), "--out", str(tmp_path / "x.pt")]) != 0
    assert "trained on" in capsys.readouterr().err and not (tmp_path / "x.pt").exists()
    assert main(["ensemble", "--checkpoints", *ckpts[:2], "--select", "greedy", "--out", str(tmp_path / "y.pt")]) != 0
    assert "give --data" in capsys.readouterr().err
    # a checkpoint moved away from its run directory cannot be checked: refused (before: scored and used)
    import shutil

    (tmp_path / "loose").mkdir()
    shutil.copy(tmp_path / "d" / "best.pt", tmp_path / "loose" / "d.pt")
    assert main(["ensemble", "--checkpoints", ckpts[0], str(tmp_path / "loose" / "d.pt"), "--select", "greedy",
                 "--data", str(learnable_folder), "--out", str(tmp_path / "z.pt")]) != 0
    assert "no splits.json beside it" in capsys.readouterr().err
    (tmp_path / "other").mkdir()  # a run on another dataset: its split names other images
    shutil.copy(tmp_path / "b" / "best.pt", tmp_path / "other" / "best.pt")
    roles = json.loads((tmp_path / "b" / "splits.json").read_text())
    roles["splits"] = {"elsewhere/" + k: v for k, v in roles["splits"].items()}
    (tmp_path / "other" / "splits.json").write_text(json.dumps(roles))
    assert main(["ensemble", "--checkpoints", ckpts[0], str(tmp_path / "other" / "best.pt"), "--select", "greedy",
                 "--data", str(learnable_folder), "--out", str(tmp_path / "o.pt")]) != 0
    assert "names other images" in capsys.readouterr().err
    assert main(["ensemble", "--checkpoints", *ckpts[:2], "--data", str(learnable_folder), "--out",
                 str(tmp_path / "m.pt")]) != 0
    assert "for --select greedy" in capsys.readouterr().err
    assert json.loads(json.dumps(selection)) == selection  # the card can hold it
    # every candidate, dropped ones too, keeps what reproduces it; the note says validation is optimistic
    assert all(c["command"].startswith("nasfer train") and c["epochs"]["completed"] and len(c["sha256"]) == 64
               for c in selection["candidates"]) and "optimistic" in selection["note"]
    assert "log-likelihood" in selection["method"] and ckpt["config"]["ensemble_of"] == ["a/best.pt", "b/best.pt"]


@pytest.mark.slow
def test_nasfer_ensemble_refuses_unfinished_runs_and_members_that_change(learnable_folder, tmp_path, capsys,
                                                                         monkeypatch):
    from nasfer.cli import main
    from nasfer.config import DataConfig, TrainConfig
    from nasfer.train import fit

    data = DataConfig(data=str(learnable_folder))
    base = dict(arch="vgg", width=4, batch_size=32, val_fraction=0.2, epochs=1)
    first = fit(TrainConfig(out=str(tmp_path / "a"), seed=1, **base), data, progress=False)
    fit(TrainConfig(out=str(tmp_path / "b"), seed=2, split_file=str(first / "splits.json"), **base), data,
        progress=False)
    ckpts = [str(tmp_path / n / "best.pt") for n in "ab"]
    history = tmp_path / "b" / "history.json"  # b as if stopped after 2 of 4 scheduled epochs
    history.write_text(json.dumps(json.loads(history.read_text()) * 2))
    ck = torch.load(ckpts[1], weights_only=False)
    ck["config"]["train"]["epochs"] = 4
    torch.save(ck, ckpts[1])
    assert main(["ensemble", "--checkpoints", *ckpts, "--out", str(tmp_path / "e.pt")]) != 0
    err = capsys.readouterr().err
    assert "has finished 2 of 4 epochs" in err and "--allow-incomplete" in err and not (tmp_path / "e.pt").exists()
    assert main(["ensemble", "--checkpoints", *ckpts, "--allow-incomplete", "--out", str(tmp_path / "e.pt")]) == 0
    assert (tmp_path / "e.pt").exists()

    import nasfer.models.ensemble as ens

    real = ens.ensemble_checkpoint

    def meanwhile(paths, weights=None, selection=None):  # the run writes a new best.pt during the command
        built = real(paths, weights, selection)
        member = Path(paths[0])
        member.write_bytes(member.read_bytes() + b"\0")
        return built

    monkeypatch.setattr(ens, "ensemble_checkpoint", meanwhile)
    assert main(["ensemble", "--checkpoints", *ckpts, "--allow-incomplete", "--out", str(tmp_path / "f.pt")]) != 0
    assert "changed while this command ran" in capsys.readouterr().err and not (tmp_path / "f.pt").exists()


def test_a_weighted_ensemble_exports_to_one_graph_with_its_weights(tmp_path):
    from nasfer.checkpoint import load_model, make_checkpoint, save_checkpoint
    from nasfer.export import ExportConfig, export_checkpoint
    from nasfer.labels import EMOTIONS
    from nasfer.models import create_model
    from nasfer.models.ensemble import ensemble_checkpoint
    from nasfer.preprocessing import Preprocessing
    from nasfer.runtime.engine import Classifier

    paths = []
    for i, width in enumerate((4, 6)):
        torch.manual_seed(i)
        paths.append(str(tmp_path / f"m{i}.pt"))
        save_checkpoint(paths[-1], make_checkpoint(model=create_model("vgg", width=width), model_name="vgg",
                                                   model_kwargs={"width": width}, labels=EMOTIONS,
                                                   preprocessing=Preprocessing()))
    save_checkpoint(tmp_path / "ens.pt", ensemble_checkpoint(paths, [0.2, 0.8]))
    export_checkpoint(ExportConfig(checkpoint=str(tmp_path / "ens.pt"), out=str(tmp_path / "ens.onnx")))
    crops = np.random.default_rng(0).integers(0, 256, (5, 48, 48), dtype=np.uint8)
    got = Classifier(tmp_path / "ens.onnx", threads=1).predict(crops)
    members = [Classifier(_export(p, tmp_path), threads=1).predict(crops) for p in paths]
    assert np.allclose(got, 0.2 * members[0] + 0.8 * members[1], atol=1e-5)
    assert load_model(tmp_path / "ens.pt")[1]["model"]["kwargs"]["weights"] == [0.2, 0.8]
    # with flip TTA in the graph (what the release exports): the weighted mean of each member's flip average
    export_checkpoint(ExportConfig(checkpoint=str(tmp_path / "ens.pt"), out=str(tmp_path / "tta.onnx"), tta=True))
    got = Classifier(tmp_path / "tta.onnx", threads=1).predict(crops)
    flipped = [Classifier(_export(p, tmp_path), threads=1).predict(crops[:, :, ::-1].copy()) for p in paths]
    averaged = [(a + b) / 2 for a, b in zip(members, flipped)]
    assert np.allclose(got, 0.2 * averaged[0] + 0.8 * averaged[1], atol=1e-5)


def _export(checkpoint: str, folder) -> str:
    from pathlib import Path

    from nasfer.export import ExportConfig, export_checkpoint

    out = str(Path(folder) / (Path(checkpoint).stem + ".onnx"))
    export_checkpoint(ExportConfig(checkpoint=checkpoint, out=out))
    return out


@pytest.mark.parametrize("kwargs, message", [
    ({"checkpoints": ["a.pt"]}, "--checkpoints needs at least two files"),
    ({"rounds": 3}, "--rounds: for --select greedy"),  # before: ignored with --select mean
    ({"threads": 2}, "--threads: for --select greedy"),
    ({"tta": False, "data": "d.zip"}, "--data, --no-tta: for --select greedy"),
    ({"select": "greedy", "rounds": 0}, "--rounds must be 1..10000"),  # before: only the best single member
    ({"select": "greedy", "rounds": -3}, "--rounds must be 1..10000"),  # before: refused after scoring every member
    ({"select": "greedy", "rounds": 100_000_000}, "--rounds must be 1..10000"),  # before: ran for hours
    ({"select": "greedy", "threads": -1}, "--threads must be 0..1024"),  # before: torch's RuntimeError traceback
    ({"select": "greedy", "max_members": -1}, "--max-members must be >= 0"),
    ({"max_members": 2}, "--max-members: for --select greedy"),
    ({}, None),  # boundaries are accepted
    ({"select": "greedy", "rounds": 1, "threads": 1024}, None),
    ({"select": "greedy", "rounds": 10_000, "threads": 0}, None),
])
def test_config_validation(kwargs, message):
    from nasfer.commands.ensemble import EnsembleConfig

    kwargs = {"checkpoints": ["a.pt", "b.pt"], **kwargs}
    cfg = EnsembleConfig(**kwargs)
    assert_validation(cfg, message)


def test_nasfer_ensemble_never_writes_over_a_member_and_needs_distinct_existing_members(tmp_path, capsys):
    """Before: `--out runs/b/best.pt` with runs/b/best.pt a member replaced that run's checkpoint by the ensemble;
    `--out` onto a folder left a .tmp behind; one file named twice made a 2-member ensemble; a missing member was
    a raw '[Errno 2]'."""
    from fixtures_evaluate import save_tiny_checkpoint
    from nasfer.cli import main

    a, b = save_tiny_checkpoint(tmp_path / "a" / "best.pt", seed=1), save_tiny_checkpoint(tmp_path / "b" / "best.pt", seed=2)
    member = b.read_bytes()
    (tmp_path / "folder").mkdir()
    for out, message in ((b, "would overwrite the input"), (tmp_path / "folder", "is a folder")):
        assert main(["ensemble", "--checkpoints", str(a), str(b), "--out", str(out), "--allow-incomplete"]) == 2
        err = capsys.readouterr().err
        assert message in err and "Traceback" not in err
    assert b.read_bytes() == member and list((tmp_path / "folder").iterdir()) == []
    assert not list(Path.cwd().glob("folder*.tmp"))
    assert main(["ensemble", "--checkpoints", str(a), str(a), "--out", str(tmp_path / "e.pt")]) == 2
    assert "names one file twice" in capsys.readouterr().err
    assert main(["ensemble", "--checkpoints", str(a), str(tmp_path / "missing.pt"), "--out", str(tmp_path / "e.pt"),
                 "--allow-incomplete"]) == 2
    err = capsys.readouterr().err
    assert "missing.pt: no such checkpoint file" in err and "Errno" not in err
