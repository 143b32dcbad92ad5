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


__all__ = ["default_model_path"]
