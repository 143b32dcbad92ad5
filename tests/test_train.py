import json

import numpy as np
import pytest
import torch

from nasfer.checkpoint import load_model
from nasfer.config import DataConfig, PRESETS, TrainConfig, apply_preset
from nasfer.data import read_dataset
from nasfer.preprocessing import Preprocessing
from nasfer.train import Trainer, class_weights, evaluate_model, fit, lr_multiplier


def small_cfg(out, **kw) -> TrainConfig:
    base = dict(arch="vgg", width=8, epochs=6, batch_size=32, lr=5e-3, out=str(out), val_fraction=0.15,
                rotation=0.0, scale=0.0, crop_padding=2, seed=1)
    base.update(kw)
    return TrainConfig(**base)


@pytest.mark.slow
def test_training_learns_a_synthetic_task(learnable_folder, tmp_path):
    data_cfg = DataConfig(data=str(learnable_folder))
    run = fit(small_cfg(tmp_path / "run"), data_cfg, progress=False)
    history = json.loads((run / "history.json").read_text())
    assert len(history) == 6 and (run / "curves.png").stat().st_size > 0
    model, ckpt = load_model(run / "best.pt")
    test = read_dataset(learnable_folder).select_split("test")
    probs = evaluate_model(model, test.images, Preprocessing.from_dict(ckpt["preprocessing"]), tta=True)
    accuracy = float((probs.argmax(1) == test.labels).mean())
    assert accuracy > 0.6, f"accuracy {accuracy:.2f} on a task where chance is 0.14"
    assert ckpt["labels"] == list(test.label_names)
    assert ckpt["config"]["train"]["arch"] == "vgg"


@pytest.mark.slow
def test_resume_after_interruption_matches_uninterrupted_run(learnable_folder, tmp_path, monkeypatch):
    data_cfg = DataConfig(data=str(learnable_folder))
    cfg = dict(epochs=3, mixup=0.2, cutout=8, rotation=8.0, scale=0.1)
    fit(small_cfg(tmp_path / "straight", **cfg), data_cfg, progress=False)

    calls = {"n": 0}
    original = Trainer.validate

    def interrupt_on_second_epoch(self):
        calls["n"] += 1
        if calls["n"] == 2:
            raise KeyboardInterrupt  # killed mid-epoch 2, after epoch 1's checkpoint
        return original(self)

    monkeypatch.setattr(Trainer, "validate", interrupt_on_second_epoch)
    with pytest.raises(KeyboardInterrupt):
        fit(small_cfg(tmp_path / "resumed", **cfg), data_cfg, progress=False)
    monkeypatch.setattr(Trainer, "validate", original)
    assert json.loads((tmp_path / "resumed" / "history.json").read_text())[-1]["epoch"] == 1
    fit(small_cfg(tmp_path / "resumed", **cfg), data_cfg, progress=False)

    a = torch.load(tmp_path / "straight" / "last.pt", weights_only=False)
    b = torch.load(tmp_path / "resumed" / "last.pt", weights_only=False)
    assert a["epoch"] == b["epoch"] == 2
    for key in a["state_dict"]:
        assert torch.equal(a["state_dict"][key], b["state_dict"][key]), key
    assert [h["val_acc"] for h in a["history"]] == [h["val_acc"] for h in b["history"]]


def test_resume_refuses_a_different_model(learnable_folder, tmp_path):
    data_cfg = DataConfig(data=str(learnable_folder))
    fit(small_cfg(tmp_path / "run", epochs=1, limit=70), data_cfg, progress=False)
    from nasfer.errors import ModelError

    with pytest.raises(ModelError, match="different model"):
        fit(small_cfg(tmp_path / "run", epochs=2, limit=70, width=4), data_cfg, progress=False)


def test_one_cycle_and_step_schedules():
    cfg = TrainConfig(schedule="onecycle")
    values = [lr_multiplier(s, 100, 10, cfg) for s in range(101)]
    assert values[0] == pytest.approx(1 / 25) and max(values) == pytest.approx(1.0, abs=1e-3)
    assert values[-1] == pytest.approx(1e-4, abs=1e-6)
    step = apply_preset(TrainConfig(preset="paper"))
    assert lr_multiplier(58 * 10, 1800, 10, step) == 1.0
    assert lr_multiplier(59 * 10, 1800, 10, step) == pytest.approx(0.2)
    assert lr_multiplier(89 * 10, 1800, 10, step) == pytest.approx(0.04)


def test_paper_preset_is_the_original_recipe_and_explicit_flags_win():
    paper = apply_preset(TrainConfig(preset="paper"))
    assert (paper.optimizer, paper.lr, paper.momentum, paper.epochs, paper.batch_size) == ("sgd", 1e-3, 0.9, 180, 16)
    assert paper.step_milestones == (59, 89) and paper.step_gamma == 0.2
    assert apply_preset(TrainConfig(preset="paper", epochs=3)).epochs == 3
    assert set(PRESETS) >= {"paper", "fast"}
    with pytest.raises(ValueError, match="unknown preset"):
        apply_preset(TrainConfig(preset="nope"))


def test_class_weights_favour_rare_classes():
    labels = np.array([0] * 90 + [1] * 10)
    w = class_weights(labels, 2, "inverse")
    assert w[1] > w[0] and float(w.mean()) == pytest.approx(1.0)
    assert class_weights(labels, 2, "none") is None
    sq = class_weights(labels, 2, "sqrt-inverse")
    assert 1 < float(sq[1] / sq[0]) < float(w[1] / w[0])


def test_cli_train_reports_bad_data_cleanly(tmp_path, capsys):
    from nasfer.cli import main

    assert main(["train", "--data", str(tmp_path / "missing"), "--out", str(tmp_path / "o")]) == 2
    err = capsys.readouterr().err
    assert "error:" in err and "no such file" in err and "Traceback" not in err


@pytest.mark.parametrize("flag,value,message", [
    ("--width", "-3", "--width must be a number >= 0, got -3"),  # was a torch RuntimeError traceback
    ("--cells", "-1", "--cells must be a number >= 0"),
    ("--seed", "-1", "--seed must be a number >= 0"),  # was "expected non-negative integer"
    ("--lr", "inf", "--lr must be a number >= 0, got inf"),
    ("--weight-decay", "nan", "--weight-decay must be a number >= 0, got nan"),
    ("--val-fraction", "1", "--val-fraction must be in [0, 1), got 1"),  # was "fraction must be in [0, 1)"
    ("--threads", "100000", "--threads must be 0..1024"),  # would hang creating the threads
    ("--epochs", "-2", "--epochs must be a number >= 0"),  # was "best.pt: checkpoint not found"
    ("--limit", "-5", "--limit must be a number >= 0"),  # was a silent run on all but 5 images
    ("--threads", "-1", "--threads must be 0..1024 (0: torch's default), got -1"),  # was a traceback
    ("--label-smoothing", "2", "--label-smoothing must be in [0, 1), got 2"),  # was a traceback
    ("--random-erasing", "3", "--random-erasing must be in [0, 1], got 3"),  # was accepted
    ("--mixup", "-1", "--mixup must be a number >= 0"),
    ("--cutout", "-4", "--cutout must be a number >= 0"),
    ("--ema-decay", "1", "--ema-decay must be in [0, 1)"),
    ("--drop-path", "2", "--drop-path must be in [0, 1)"),
    ("--distill-temperature", "0", "--distill-temperature must be a number > 0"),
    ("--step-milestones", "0", "--step-milestones must be epochs >= 1, got 0"),
])
def test_impossible_flag_values_fail_before_any_data_is_read(tmp_path, capsys, flag, value, message):
    from nasfer.cli import main

    assert main(["train", "--data", str(tmp_path / "missing"), flag, value, "--out", str(tmp_path / "o")]) == 2
    err = capsys.readouterr().err
    assert message in err and "no such file" not in err and "Traceback" not in err
    assert not (tmp_path / "o").exists()


@pytest.mark.parametrize("flag,value,message", [("--width", "-3", "--width must be a number >= 0"),
                                                ("--folds", "1", "--folds must be at least 2, got 1"),
                                                ("--group-regex", "(", "--group-regex '(' is not a valid"),
                                                ("--rotation", "200", "--rotation must be in [0, 180], got 200")])
def test_crossval_checks_the_training_flags_before_reading_data(tmp_path, capsys, flag, value, message):
    from nasfer.cli import main

    assert main(["crossval", "--data", str(tmp_path / "missing"), flag, value, "--out", str(tmp_path / "o")]) == 2
    err = capsys.readouterr().err
    assert message in err and "no such file" not in err and "Traceback" not in err


@pytest.mark.parametrize("argv,message", [
    (["--init-from", "default", "--width", "8"], "--width with --init-from: the architecture comes from the checkpoint"),
    (["--init-from", "default", "--arch", "vgg"], "--arch with --init-from"),  # given, even at its default value
    (["--arch", "vgg", "--cells", "2"], "--cells sets the cells per stack of a NASNet model; 'vgg' has none"),
])
def test_architecture_flags_that_would_be_ignored_are_refused_before_any_work(tmp_path, capsys, argv, message):
    """--width/--cells with --init-from were silently ignored while the run recorded them; --cells on a VGG failed
    only after the data was read and the run directory made."""
    from nasfer.cli import main

    assert main(["train", "--data", str(tmp_path / "missing"), *argv, "--out", str(tmp_path / "o")]) == 2
    err = capsys.readouterr().err
    assert message in err and "no such file" not in err and not (tmp_path / "o").exists()


def test_boundary_values_and_every_preset_are_valid():
    TrainConfig().validate()
    TrainConfig(random_erasing=1.0, distill_alpha=1.0, step_gamma=1.0, rotation=180.0, label_smoothing=0.0,
                step_milestones=(1, 2)).validate()
    for name in PRESETS:
        apply_preset(TrainConfig(preset=name)).validate()


def test_cells_sets_the_n_of_a_nasnet_and_is_refused_elsewhere():
    from nasfer.errors import ModelError
    from nasfer.train import build_model

    model, name, kwargs = build_model(TrainConfig(arch="nasnet-a-mobile", width=8, cells=1), 7)
    default, _, default_kwargs = build_model(TrainConfig(arch="nasnet-a-mobile", width=8), 7)
    assert (name, kwargs["F"], kwargs["N"]) == ("nasnet-a-mobile", 8, 1) and "N" not in default_kwargs
    assert (len(model.cells), len(default.cells)) == (1 * 3 + 2, 2 * 3 + 2)  # 3 stacks of N + 2 reduction cells
    with pytest.raises(ModelError, match="--cells sets the cells per stack of a NASNet model; 'vgg' has none"):
        build_model(TrainConfig(arch="vgg", cells=1), 7)


def test_grouped_convs_train_contiguous_plain_convs_channels_last():
    from nasfer.models import create_model
    from nasfer.train import memory_format_for

    assert memory_format_for(create_model("vgg", width=4)) == torch.channels_last
    assert memory_format_for(create_model("mini-xception", width=4)) == torch.contiguous_format


def test_random_erasing_is_seeded_keeps_shape_and_erases_a_rectangle():
    from nasfer.data.augment import random_erasing

    x = torch.full((16, 1, 48, 48), 7.0)
    a = random_erasing(x, 1.0, torch.Generator().manual_seed(5))
    b = random_erasing(x, 1.0, torch.Generator().manual_seed(5))
    assert a.shape == x.shape and a.dtype == x.dtype and torch.equal(a, b)
    for img in a[:, 0]:
        changed = img != 7.0
        rows, cols = changed.any(1).nonzero(), changed.any(0).nonzero()
        area = (rows.max() - rows.min() + 1) * (cols.max() - cols.min() + 1)
        assert 0.01 * 48 * 48 <= area <= 0.45 * 48 * 48  # one box of 2-40% of the image (rounding aside)
        assert float(img.min()) >= 0.0 and float(img.max()) <= 255.0
    assert torch.equal(random_erasing(x, 0.0, torch.Generator().manual_seed(5)), x)


@pytest.mark.slow
def test_ema_weights_differ_are_validated_beside_raw_and_resume_exactly(learnable_folder, tmp_path, monkeypatch):
    data_cfg = DataConfig(data=str(learnable_folder))
    cfg = dict(epochs=3, ema_decay=0.9, random_erasing=0.5)
    run = fit(small_cfg(tmp_path / "straight", **cfg), data_cfg, progress=False)
    history = json.loads((run / "history.json").read_text())
    assert all("val_acc_ema" in h and "val_acc" in h for h in history)
    last = torch.load(run / "last.pt", weights_only=False)
    ema = {k[len("module."):]: v for k, v in last["ema_state_dict"].items() if k.startswith("module.")}
    assert set(ema) == set(last["state_dict"])
    assert any(not torch.equal(ema[k], last["state_dict"][k]) for k in ema)
    best = torch.load(run / "best.pt", weights_only=False)
    assert best["weights"] in ("raw", "ema")
    expected = max(max(h["val_acc"], h["val_acc_ema"]) for h in history)
    assert best["metrics"]["val_accuracy"] == pytest.approx(expected)
    from nasfer.evaluate import EvalConfig, predict_split  # best.pt holds the weights that scored that

    pred = predict_split(EvalConfig(data=str(learnable_folder), split="val", split_file=str(run / "splits.json"),
                                    model=str(run / "best.pt"), tta=True, threads=1))
    assert float(np.mean(pred.probs.argmax(1) == pred.y_true)) == pytest.approx(expected)

    calls = {"n": 0}
    original = Trainer.validate

    def interrupt_on_second_epoch(self, model=None):
        calls["n"] += 1
        if calls["n"] == 3:  # epoch 2's raw validation (epoch 1 validated raw and EMA)
            raise KeyboardInterrupt
        return original(self, model)

    monkeypatch.setattr(Trainer, "validate", interrupt_on_second_epoch)
    with pytest.raises(KeyboardInterrupt):
        fit(small_cfg(tmp_path / "resumed", **cfg), data_cfg, progress=False)
    monkeypatch.setattr(Trainer, "validate", original)
    fit(small_cfg(tmp_path / "resumed", **cfg), data_cfg, progress=False)
    resumed = torch.load(tmp_path / "resumed" / "last.pt", weights_only=False)
    for key, value in last["ema_state_dict"].items():
        assert torch.equal(value, resumed["ema_state_dict"][key]), key


def test_long_preset_turns_on_erasing_and_ema():
    long = apply_preset(TrainConfig(preset="long"))
    assert long.epochs >= 120 and long.random_erasing > 0 and 0 < long.ema_decay < 1


def test_a_flag_given_with_its_default_value_still_wins_over_the_preset(tmp_path):
    """Before: `--preset long --ema-decay 0 --random-erasing 0` trained with EMA 0.999 and erasing 0.5."""
    import argparse

    from nasfer.card import train_command
    from nasfer.config import add_arguments, from_args, to_dict

    parser = argparse.ArgumentParser()
    add_arguments(parser, TrainConfig)
    cfg = from_args(TrainConfig, parser.parse_args(["--preset", "long", "--ema-decay", "0", "--random-erasing", "0",
                                                    "--width", "32"]))
    resolved = apply_preset(cfg)
    assert (resolved.ema_decay, resolved.random_erasing, resolved.epochs, resolved.width) == (0.0, 0.0, 150, 32)
    # the card's command reproduces it: the explicit defaults are written out
    command = train_command({"train": to_dict(resolved), "data": {"data": "fer2013.zip"}})
    assert "--ema-decay 0.0" in command and "--random-erasing 0.0" in command and "--preset long" in command
    again = from_args(TrainConfig, parser.parse_args(command.split()[2:][command.split()[2:].index("--preset"):]))
    assert (apply_preset(again).ema_decay, apply_preset(again).random_erasing) == (0.0, 0.0)


def test_automatic_epochs_batch_and_lr_follow_the_data_when_fine_tuning():
    from nasfer.config import resolve_auto

    scratch = resolve_auto(TrainConfig(), 28_000)
    assert (scratch.epochs, scratch.batch_size, scratch.lr) == (30, 128, 3e-3)  # the defaults before 'auto'
    small = resolve_auto(TrainConfig(init_from="default"), 648)  # a CK+-sized fold
    assert (small.epochs, small.batch_size, small.lr) == (29, 32, 1e-3)  # 21 steps/epoch, ~600 steps
    tiny = resolve_auto(TrainConfig(init_from="default"), 100)
    assert tiny.batch_size == 16 and tiny.epochs == 60  # capped: 7 steps/epoch would want 86
    large = resolve_auto(TrainConfig(init_from="default"), 20_000)
    assert (large.batch_size, large.epochs) == (128, 10)  # every image seen at least 10 times
    explicit = resolve_auto(TrainConfig(init_from="default", epochs=5, batch_size=64, lr=2e-3), 648)
    assert (explicit.epochs, explicit.batch_size, explicit.lr) == (5, 64, 2e-3)


def test_a_long_run_started_before_auto_defaults_resolves_to_the_same_recipe():
    """`nasfer train --preset long ...` of a run in progress must resume with the config it started with."""
    from nasfer.config import resolve_auto

    cfg = resolve_auto(apply_preset(TrainConfig(preset="long", width=32)), 25_838)
    assert (cfg.epochs, cfg.batch_size, cfg.lr, cfg.optimizer, cfg.schedule) == (150, 128, 3e-3, "adamw", "onecycle")
    assert (cfg.random_erasing, cfg.ema_decay, cfg.label_smoothing, cfg.teacher) == (0.5, 0.999, 0.1, None)


def test_resume_accepts_a_default_spelled_out(learnable_folder, tmp_path):
    # a NASNet started without --cells is N = 2; the same command with --cells 2 is the same model and continues
    data_cfg = DataConfig(data=str(learnable_folder))
    nas = dict(arch="nasnet-a-mobile", width=4, limit=70)
    fit(small_cfg(tmp_path / "run", epochs=1, **nas), data_cfg, progress=False)
    fit(small_cfg(tmp_path / "run", epochs=1, cells=2, **nas), data_cfg, progress=False)  # finished: nothing to do
    assert [h["epoch"] for h in json.loads((tmp_path / "run" / "history.json").read_text())] == [1]
    from nasfer.errors import ModelError

    with pytest.raises(ModelError, match="different model"):  # one cell per stack is not
        fit(small_cfg(tmp_path / "run", epochs=1, cells=1, **nas), data_cfg, progress=False)


def test_resolved_kwargs_fill_the_factory_defaults():
    from nasfer.errors import ModelError
    from nasfer.models.registry import resolved_kwargs

    assert resolved_kwargs("nasnet-a-mobile", {}) == resolved_kwargs("nasnet-a-mobile", {"N": 2, "F": 16})
    assert resolved_kwargs("nasnet-a-mobile", {"N": 1}) != resolved_kwargs("nasnet-a-mobile", {})
    with pytest.raises(ModelError, match="does not take"):
        resolved_kwargs("vgg", {"cells": 2})


def test_resume_refuses_a_changed_recipe_but_not_a_changed_thread_count(learnable_folder, tmp_path, capsys):
    """Before: a finished 2-epoch run resumed with --epochs 3 trained its third epoch at the one-cycle
    schedule's final learning rate (~1e-7), and said nothing."""
    from nasfer.cli import main

    data_cfg = DataConfig(data=str(learnable_folder))
    fit(small_cfg(tmp_path / "run", epochs=1, limit=70, threads=1), data_cfg, progress=False)
    fit(small_cfg(tmp_path / "run", epochs=1, limit=70, threads=2), data_cfg, progress=False)  # speed only: fine
    argv = ["train", "--data", str(learnable_folder), "--out", str(tmp_path / "run"), "--arch", "vgg", "--width", "8",
            "--batch-size", "32", "--lr", "5e-3", "--val-fraction", "0.15", "--rotation", "0", "--scale", "0",
            "--crop-padding", "2", "--seed", "1", "--limit", "70", "--epochs", "2"]
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert "--epochs 1 -> 2" in err and "--init-from" in err and "Traceback" not in err
    assert len(json.loads((tmp_path / "run" / "history.json").read_text())) == 1  # nothing trained


def test_a_run_says_which_files_it_skipped_and_why(learnable_folder, tmp_path, capsys):
    """Before: an unreadable image in the training folder was left out in silence (only a count in the checkpoint)."""
    from nasfer.cli import main

    (learnable_folder / "train" / "sad" / "img_21.jpg").write_text("not an image")
    argv = ["train", "--data", str(learnable_folder), "--out", str(tmp_path / "run"), "--arch", "vgg", "--width", "4",
            "--epochs", "1", "--batch-size", "32", "--limit", "70", "--threads", "1"]
    assert main(argv) == 0
    out = capsys.readouterr().out
    assert "skipped 1 unreadable files/rows" in out and "img_21.jpg" in out
