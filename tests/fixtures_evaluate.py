"""Fixtures of the evaluate tests (owned by the evaluation part), shared by test_evaluate and test_record.

`folder` is a train/test image-folder dataset with one corrupt file, `checkpoint` a tiny random `vgg`
checkpoint (width 4), both built once per test module; `run_cli` runs `nasfer evaluate` in-process.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from fixtures_data import write_class_tree
from nasfer.cli import main
from nasfer.labels import EMOTIONS

__all__ = ["checkpoint", "folder"]


def save_tiny_checkpoint(path: Path, labels=EMOTIONS, seed: int = 0) -> Path:
    import torch

    from nasfer.checkpoint import make_checkpoint, save_checkpoint
    from nasfer.models import create_model
    from nasfer.preprocessing import Preprocessing

    torch.manual_seed(seed)
    model = create_model("vgg", num_classes=len(labels), width=4)
    save_checkpoint(path, make_checkpoint(model=model, model_name="vgg", model_kwargs={"num_classes": len(labels),
                                          "width": 4}, labels=labels, preprocessing=Preprocessing()))
    return path


@pytest.fixture(scope="module")
def folder(tmp_path_factory) -> Path:
    """train/ (2 per class) and test/ (3 per class) image folders, plus one corrupt file."""
    root = tmp_path_factory.mktemp("eval") / "faces"
    write_class_tree(root, per_class=2, seed=0, split="train")
    write_class_tree(root, per_class=3, seed=1, split="test")
    (root / "test" / "happy" / "broken.png").write_bytes(b"\x89PNG\r\n\x1a\n not an image")
    return root


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory) -> Path:
    return save_tiny_checkpoint(tmp_path_factory.mktemp("ckpt") / "tiny.pt")


def run_cli(capsys, *argv) -> tuple[int, str, str]:
    code = main(["evaluate", *map(str, argv)])
    out, err = capsys.readouterr()
    assert "Traceback" not in err
    return code, out, err
