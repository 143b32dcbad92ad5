"""The model shipped inside the package: `default.onnx` with its model card `default.json`."""

from __future__ import annotations

from pathlib import Path

from ..errors import ModelError


def default_model_path() -> Path:
    """Path of the shipped `default.onnx`; a ModelError that says what to do where it is missing."""
    path = Path(__file__).with_name("default.onnx")
    if not path.is_file():
        raise ModelError(
            f"no default model shipped at {path}; pass a model with --model FILE.onnx "
            "(make one with `nasfer train` then `nasfer export --checkpoint best.pt --out model.onnx`)")
    return path


def default_checkpoint_path() -> Path:
    """The PyTorch checkpoint shipped for fine-tuning (`nasfer train --init-from default`).

    It holds the weights of the default model, or of its first member when the default is an ensemble
    (an ensemble is fine-tuned member by member), without optimizer state.
    """
    path = Path(__file__).with_name("default.pt")
    if not path.is_file():
        raise ModelError(f"no fine-tuning checkpoint shipped at {path}; pass a training checkpoint (.pt) instead")
    return path


__all__ = ["default_checkpoint_path", "default_model_path"]
