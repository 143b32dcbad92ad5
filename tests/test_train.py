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


def test_channels_last_except_grouped_convs_under_bf16_and_strided_pointwise_on_few_channels():
    from nasfer.models import create_model
    from nasfer.train import memory_format_for

    for precision in ("fp32", "bf16"):
        assert memory_format_for(create_model("vgg", width=4), precision) == torch.channels_last
        # mini-Xception's 1x1 stride-2 residual on 4 or 8 channels: channels_last backward corrupts the heap
        assert memory_format_for(create_model("mini-xception", width=4), precision) == torch.contiguous_format
        assert memory_format_for(create_model("mini-xception", width=8), precision) == torch.contiguous_format
    assert memory_format_for(create_model("mini-xception", width=16), "fp32") == torch.channels_last
    assert memory_format_for(create_model("mini-xception", width=16), "bf16") == torch.contiguous_format
    assert memory_format_for(torch.nn.Conv2d(16, 8, 1, stride=2), "fp32") == torch.channels_last
    assert memory_format_for(torch.nn.Conv2d(15, 8, 1, stride=2), "fp32") == torch.contiguous_format


def test_depthwise_backward_in_channels_last_matches_contiguous():
    """fp32 trains depthwise convs in channels_last (3.7x faster backward): its gradients are the same."""
    import torch.nn.functional as F

    torch.manual_seed(0)
    x, w, gy = torch.randn(4, 8, 12, 12), torch.randn(8, 1, 7, 7), torch.randn(4, 8, 12, 12)
    grads = []
    for fmt in (torch.contiguous_format, torch.channels_last):
        xx = x.to(memory_format=fmt).detach().requires_grad_()
        ww = w.to(memory_format=fmt).detach().requires_grad_()
        F.conv2d(xx, ww, padding=3, groups=8).backward(gy.to(memory_format=fmt))
        grads.append((xx.grad, ww.grad))
    torch.testing.assert_close(grads[0][0], grads[1][0], rtol=1e-4, atol=1e-4)
    torch.testing.assert_close(grads[0][1], grads[1][1], rtol=1e-4, atol=1e-4)


def test_trainer_picks_the_memory_format_for_its_resolved_precision(learnable_folder, tmp_path):
    from nasfer.train import prepare_run

    for precision, fmt in (("fp32", torch.channels_last), ("bf16", torch.contiguous_format)):
        cfg = small_cfg(tmp_path / precision, arch="mini-xception", width=16, epochs=1, precision=precision)
        trainer = prepare_run(cfg, DataConfig(data=str(learnable_folder)), progress=False)
        assert trainer.memory_format == fmt
        # the weights too: a channels_last depthwise weight makes a bf16 conv run channels_last whatever its input
        # (before, prepare_run moved the weights in fp32's format under bf16)
        weights = [m.weight for m in trainer.model.modules() if isinstance(m, torch.nn.Conv2d) and m.groups > 1]
        # ((C, 1, k, k) is both formats by is_contiguous: compare the strides, which the conv reads)
        assert weights and all(w.stride() == torch.empty(w.shape, memory_format=fmt).stride() for w in weights)
