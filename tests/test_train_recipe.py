"""Training recipe, presets and resume: random erasing, the weight EMA, the long preset, automatic epochs for
fine-tuning, and what a resumed run accepts or refuses.

These tests were in tests/test_train.py until b4ee396 (2026-12-02) dropped them by mistake while rewriting its
memory-format tests; restored here unchanged but for their imports."""

import json

import numpy as np
import pytest
import torch

from fixtures_models import interrupt_and_resume
from nasfer.config import DataConfig, TrainConfig, apply_preset
from nasfer.train import fit
from test_train import small_cfg


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
    # only last.pt carries what resuming needs; best.pt is the selected weights (before: both, twice the size)
    resume_only = {"optimizer", "scheduler", "ema_state_dict"}
    assert resume_only <= set(last) and not resume_only & set(best)
    expected = max(max(h["val_acc"], h["val_acc_ema"]) for h in history)
    assert best["metrics"]["val_accuracy"] == pytest.approx(expected)
    from nasfer.evaluate import EvalConfig, predict_split  # best.pt holds the weights that scored that

    pred = predict_split(EvalConfig(data=str(learnable_folder), split="val", split_file=str(run / "splits.json"),
                                    model=str(run / "best.pt"), tta=True, threads=1))
    assert float(np.mean(pred.probs.argmax(1) == pred.y_true)) == pytest.approx(expected)

    interrupt_and_resume(monkeypatch, lambda: fit(small_cfg(tmp_path / "resumed", **cfg), data_cfg, progress=False),
                         stop_when=lambda trainer, n: n == 3)  # epoch 2's raw validation (epoch 1: raw and EMA)
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
