"""The one checkpoint format and the one way to load it.

A checkpoint is a torch-saved dict that holds everything needed to rebuild the model without the
code that trained it (nanoGPT-style): the registered model name and its JSON-safe kwargs (a NASNet
genotype included), the label names, the preprocessing spec, the training config, and, for
resuming, optimizer/scheduler/RNG state and the history so far.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from .errors import ModelError
from .preprocessing import Preprocessing

FORMAT = "nasfer-checkpoint/1"


def make_checkpoint(
    *,
    model,
    model_name: str,
    model_kwargs: dict[str, Any],
    labels: list[str] | tuple[str, ...],
    preprocessing: Preprocessing,
    config: dict[str, Any] | None = None,
    **extra: Any,
) -> dict[str, Any]:
    """Assemble the checkpoint dict (extra keys: epoch, metrics, optimizer, scheduler, rng, history...)."""
    return {
        "format": FORMAT,
        "model": {"name": model_name, "kwargs": dict(model_kwargs)},
        "state_dict": {k: v.detach().cpu() for k, v in model.state_dict().items()},
        "labels": list(labels),
        "preprocessing": preprocessing.to_dict(),
        "config": dict(config or {}),
        **extra,
    }


def save_checkpoint(path: str | os.PathLike, checkpoint: dict[str, Any]) -> None:
    """Write atomically (temp file + rename) so a kill mid-write never leaves a broken checkpoint."""
    import torch

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    torch.save(checkpoint, tmp)
    os.replace(tmp, path)


def safe_torch_load(path: str | os.PathLike, what: str = "checkpoint") -> Any:
    """`torch.load(path, weights_only=True)`: tensors and plain Python values only, so a file from
    anywhere cannot run code while it is read (pickle's arbitrary objects are refused).

    ModelError when the file is damaged, not a torch file, or holds other objects (saying so).
    Every file nasfer writes (training checkpoints with optimizer state, search states) is plain.
    """
    import pickle

    import torch

    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as exc:
        lines = [line.strip() for line in str(exc).splitlines()]
        unsafe = next((line for line in lines if "GLOBAL" in line or "global" in line.split(" ")[:3]), None)
        if unsafe:
            raise ModelError(f"{path}: refused: this {what} holds Python objects other than tensors and plain "
                             f"values, which could run code when loaded; nasfer never writes such files "
                             f"({unsafe[:200]})") from None
        raise ModelError(f"{path}: not a readable {what} (damaged, or not a file torch.save wrote)") from None
    except Exception as exc:  # torch raises many types for damaged/foreign files
        raise ModelError(f"{path}: not a readable {what} ({type(exc).__name__}: {str(exc)[:300]})") from None


def load_checkpoint(path: str | os.PathLike) -> dict[str, Any]:
    """Read and validate a checkpoint; a wrong, damaged or unsafe file is a ModelError, not a traceback."""
    path = Path(path)
    if not path.is_file():
        raise ModelError(f"{path}: checkpoint not found")
    ckpt = safe_torch_load(path)
    if not isinstance(ckpt, dict) or ckpt.get("format") != FORMAT:
        raise ModelError(f"{path}: not a nasfer checkpoint (expected format {FORMAT!r})")
    return ckpt


def build_model(checkpoint: dict[str, Any]):
    """Rebuild the model of a loaded checkpoint, weights loaded, in eval mode."""
    from .models import create_model

    spec = checkpoint["model"]
    model = create_model(spec["name"], **spec["kwargs"])
    try:
        model.load_state_dict(checkpoint["state_dict"])
    except RuntimeError as exc:
        raise ModelError(f"weights do not fit model {spec['name']!r}: {exc}") from None
    return model.eval()


def load_model(path: str | os.PathLike):
    """(model in eval mode, checkpoint dict) from a checkpoint file."""
    ckpt = load_checkpoint(path)
    return build_model(ckpt), ckpt


def run_configs(config: dict[str, Any]) -> list[dict[str, Any]]:
    """The training-run configs ({"train": {...}, "data": {...}}) behind a model whose checkpoint config (or
    card's training.config) is `config`: an ensemble's members' (`ensemble_checkpoint` keeps them under
    "members"), else `config` itself. [] for an ensemble that recorded none."""
    if "ensemble_of" in config or "members" in config:
        return [m for m in (config.get("members") or []) if isinstance(m, dict)]
    return [config]


def on_face_crops(config: dict[str, Any]) -> bool:
    """Whether the model of checkpoint config `config` trained on face crops (`nasfer train --detect-faces`);
    an ensemble when all its members did."""
    runs = run_configs(config)
    return bool(runs) and all((run.get("train") or {}).get("detect_faces") for run in runs)


def preprocessing_of(checkpoint: dict[str, Any]) -> Preprocessing:
    return Preprocessing.from_dict(checkpoint.get("preprocessing", {}))


#: Keys only a resumed training run needs (last.pt): optimizer and scheduler state and the weight EMA's running
#: copy (a checkpoint's selected weights, raw or EMA, are its `state_dict`). best.pt and shipped checkpoints
#: leave them out (a quarter to a third of last.pt's size).
TRAINING_STATE_KEYS = ("optimizer", "scheduler", "ema_state_dict")


def strip_training_state(checkpoint: dict[str, Any]) -> dict[str, Any]:
    """A copy without `TRAINING_STATE_KEYS`: enough to rebuild, evaluate, export, fine-tune or ensemble."""
    return {k: v for k, v in checkpoint.items() if k not in TRAINING_STATE_KEYS}
