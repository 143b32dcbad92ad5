"""Training step 3: the network, built from scratch (--arch / --genotype) or started from a checkpoint.

Call after seeding torch (the fresh weights are drawn from the global RNG).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

import torch
from torch import nn

from ..config import TrainConfig
from ..errors import ModelError
from ..models import create_model
from ..preprocessing import Preprocessing


@dataclass
class ModelStart:
    """A model ready to train, with what the run records about it.

    head_params: state-dict names of the classifier head when fine-tuning (None from scratch);
    transfer: the fine-tuning report (`nasfer.finetune.TransferReport.to_dict()`), None from scratch.
    search: the `nasfer search` record of the --genotype file (see `search_record`), None otherwise.
    """

    model: nn.Module
    name: str
    kwargs: dict[str, Any]
    preprocessing: Preprocessing
    head_params: list[str] | None = None
    transfer: dict[str, Any] | None = None
    search: dict[str, Any] | None = None


def build_model(cfg: TrainConfig, num_classes: int) -> tuple[nn.Module, str, dict[str, Any]]:
    """(model, registered name, kwargs) from --arch or --genotype (a NASNet genotype or a macro spec), for
    1-channel input and `num_classes` outputs.

    Raises ModelError for an unknown architecture or --cells on a non-NASNet one, DataError/ValueError for an
    unreadable genotype.
    """
    kwargs: dict[str, Any] = {"num_classes": num_classes, "in_channels": 1}
    if cfg.genotype:  # a NASNet genotype or a macro-space spec (nasfer search's best_arch.json)
        from ..nas.space import model_from_file

        name, arch = model_from_file(cfg.genotype)
        kwargs.update(arch)
    else:
        name = cfg.arch
    if cfg.width:
        kwargs["width" if not name.startswith("nasnet") else "F"] = cfg.width
    if cfg.cells:
        if not name.startswith("nasnet"):
            raise ModelError(f"--cells sets the cells per stack of a NASNet model; {name!r} has none")
        kwargs["N"] = cfg.cells
    if cfg.drop_path and name.startswith("nasnet"):
        kwargs["drop_path"] = cfg.drop_path
    return create_model(name, **kwargs), name, kwargs


def start_model(cfg: TrainConfig, label_names: tuple[str, ...] | list[str],
                log: Callable[[str], None] = lambda msg: None) -> ModelStart:
    """The run's model: a checkpoint's architecture and weights with a head for `label_names` (--init-from),
    or a fresh network with the default preprocessing (48x48 grayscale, mean 0.5, std 0.25)."""
    if cfg.init_from:
        from ..finetune import start_from

        start = start_from(cfg.init_from, label_names, drop_path=cfg.drop_path)
        log(start.report.summary())
        return ModelStart(start.model, start.model_name, start.model_kwargs, start.preprocessing,
                          head_params=start.head_params, transfer=start.report.to_dict())
    model, name, kwargs = build_model(cfg, len(label_names))
    return ModelStart(model, name, kwargs, Preprocessing(), search=search_record(cfg.genotype))


def search_record(genotype: str | None) -> dict[str, Any] | None:
    """The `search` record of an architecture file written by `nasfer search` (space, strategy, seed, rungs,
    the reward's fidelity, its calibration, the run), for the checkpoint and the card; None otherwise."""
    if not genotype:
        return None
    from ..nas.space import read_spec

    record = read_spec(genotype).get("search")
    return {**record, "architecture_file": Path(genotype).name} if isinstance(record, dict) else None


def _strided_pointwise_on_few_channels(m: nn.Module) -> bool:
    return (isinstance(m, nn.Conv2d) and m.kernel_size == (1, 1) and m.stride != (1, 1)
            and m.in_channels < 16)


def memory_format_for(model: nn.Module, precision: str) -> torch.memory_format:
    """The memory format `model` trains in (`precision`: the resolved "fp32" or "bf16", required: a bf16 caller
    that left it out would put grouped convs' weights in channels_last): channels_last where safe.

    On an AVX2 CPU in fp32 (benchmarks/results/memory_format.json), channels_last trained VGG-32 1.24x and
    the issue-11 search winners 1.3-1.95x faster, a 7x7 depthwise conv's forward+backward 3.8x (its gradients
    agree with float64 to 1e-5). Two cases stay contiguous, both bugs of torch 2.13's CPU (oneDNN) backward:
    - a 1x1 strided conv reading fewer than 16 channels (mini-Xception's residual at width 4): channels_last
      corrupts the heap ("double free or corruption", found at fewer than 8 channels, the AVX2 vector width;
      16 covers AVX-512);
    - grouped (depthwise) convs under bf16 autocast: crashed on mini-Xception within the first FER2013 epoch on
      a CPU with native bf16.
    """
    if any(_strided_pointwise_on_few_channels(m) for m in model.modules()):
        return torch.contiguous_format
    grouped = any(isinstance(m, nn.Conv2d) and m.groups > 1 for m in model.modules())
    return torch.contiguous_format if grouped and precision == "bf16" else torch.channels_last


__all__ = ["ModelStart", "build_model", "start_model", "memory_format_for"]
