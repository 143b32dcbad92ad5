"""Model fixtures (owned by the inference part): a tiny random checkpoint and its ONNX export; and the
training tests' way to interrupt a run and resume it (`interrupt_and_resume`).

The weights are random but not trivial: batch-norm statistics and affine parameters are drawn too,
so export and parity tests exercise the folding of every layer, not identities.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Callable

import pytest

from nasfer.labels import EMOTIONS


def tiny_model(seed: int = 0, num_classes: int = len(EMOTIONS), width: int = 8):
    """A small registered `vgg` with randomised weights and batch-norm statistics, in eval mode."""
    import torch

    from nasfer.models import create_model

    torch.manual_seed(seed)
    model = create_model("vgg", num_classes=num_classes, width=width)
    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for module in model.modules():
            if isinstance(module, torch.nn.BatchNorm2d):
                n = module.num_features
                module.running_mean.copy_(torch.randn(n, generator=gen) * 0.1)
                module.running_var.copy_(torch.rand(n, generator=gen) * 0.5 + 0.75)
                module.weight.copy_(torch.rand(n, generator=gen) + 0.5)
                module.bias.copy_(torch.randn(n, generator=gen) * 0.1)
    return model.eval()


def write_tiny_checkpoint(path: Path, seed: int = 0, labels=EMOTIONS, width: int = 8) -> Path:
    """Save a tiny model as a full nasfer checkpoint (config, history, metrics like `nasfer train` writes)."""
    from nasfer.checkpoint import make_checkpoint, save_checkpoint
    from nasfer.config import DataConfig, TrainConfig, to_dict
    from nasfer.preprocessing import Preprocessing

    model = tiny_model(seed, len(labels), width)
    train = TrainConfig(arch="vgg", epochs=2, width=width, out="/home/someone/runs/tiny", preset="fast")
    data = DataConfig(data="/home/someone/data/fer2013.zip")
    history = [{"epoch": 1, "train_loss": 1.9, "train_acc": 0.2, "val_loss": 1.8, "val_acc": 0.25, "lr": 0.003},
               {"epoch": 2, "train_loss": 1.7, "train_acc": 0.3, "val_loss": 1.7, "val_acc": 0.31, "lr": 0.0001}]
    ckpt = make_checkpoint(
        model=model, model_name="vgg", model_kwargs={"num_classes": len(labels), "in_channels": 1, "width": width},
        labels=list(labels), preprocessing=Preprocessing(),
        config={"train": to_dict(train), "data": to_dict(data)},
        epoch=1, metrics={"val_accuracy": 0.31, "best_val_accuracy": 0.31}, history=history, n_train=100, n_val=10)
    save_checkpoint(path, ckpt)
    return path


@pytest.fixture(scope="session")
def tiny_checkpoint(tmp_path_factory) -> Path:
    """Path of a small randomly initialised `vgg` (width 8) checkpoint, saved by nasfer.checkpoint."""
    return write_tiny_checkpoint(tmp_path_factory.mktemp("tiny_model") / "tiny.pt")


@pytest.fixture(scope="session")
def tiny_onnx(tiny_checkpoint: Path) -> Path:
    """Path of `tiny_checkpoint` exported to ONNX (its model card `tiny.json` beside it)."""
    from nasfer.export import ExportConfig, export_checkpoint

    out = tiny_checkpoint.with_suffix(".onnx")
    export_checkpoint(ExportConfig(checkpoint=str(tiny_checkpoint), out=str(out)))
    return out


def interrupt_and_resume(monkeypatch, train: Callable[[], Any], stop_when: Callable[[Any, int], bool],
                         before_resume: Callable[[], None] | None = None) -> Any:
    """Interrupt a training, then resume it: `train()` (a `fit` of one run directory) is run with
    `Trainer.validate` raising KeyboardInterrupt at the call where `stop_when(trainer, n)` is true (`n`: that
    validation's number in the run, from 1), and must raise it; `Trainer.validate` is restored,
    `before_resume()` runs if given, then `train()` again resumes the run. Returns what the resumed `train()`
    returns."""
    from nasfer.train import Trainer

    original, calls = Trainer.validate, {"n": 0}

    def interrupting(self, model=None):
        calls["n"] += 1
        if stop_when(self, calls["n"]):
            raise KeyboardInterrupt
        return original(self, model)

    monkeypatch.setattr(Trainer, "validate", interrupting)
    with pytest.raises(KeyboardInterrupt):
        train()
    monkeypatch.setattr(Trainer, "validate", original)
    if before_resume is not None:
        before_resume()
    return train()
