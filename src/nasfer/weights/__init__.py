"""The models shipped inside the package: `<name>.onnx` with its model card `<name>.json`.

`default` is the accurate model every command uses unless told otherwise; `fast` (where shipped) trades a
few points of accuracy for several times the throughput. Anywhere a model file is accepted, a shipped
model's bare name (`--model fast`) selects it.
"""

from __future__ import annotations

import os
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


def shipped_models() -> dict[str, Path]:
    """Name -> path of every model shipped in this folder (those with a card beside them)."""
    here = Path(__file__).parent
    return {p.stem: p for p in sorted(here.glob("*.onnx")) if p.with_suffix(".json").is_file()}


def resolve_model(model: str | os.PathLike | None) -> Path:
    """A model argument -> its .onnx/.pt path: None is the default; a shipped model's bare name (no such
    file in the working directory) is that model; anything else is a path, checked to exist."""
    if model is None or str(model) == "default":
        path = default_model_path()  # its ModelError says what to do where none is shipped
        if not path.is_file():
            raise ModelError(f"the shipped default model {path} is missing; pass --model FILE.onnx|FILE.pt")
        return path
    path = Path(model).expanduser()
    if not path.exists() and path.suffix == "" and len(path.parts) == 1:
        shipped = shipped_models()
        if str(model) in shipped:
            return shipped[str(model)]
        raise ModelError(f"{model}: no such model file, and no shipped model of that name "
                         f"(shipped: {', '.join(shipped) or 'none'})")
    if path.is_dir():
        raise ModelError(f"{path} is a folder: give the model file (.onnx, or .pt where a command trains or "
                         "evaluates checkpoints)")
    if not path.is_file():
        raise ModelError(f"{path}: model file not found")
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


__all__ = ["default_checkpoint_path", "default_model_path", "resolve_model", "shipped_models"]
