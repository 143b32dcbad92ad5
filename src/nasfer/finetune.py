"""Fine-tuning: start a training run from a trained checkpoint (`nasfer train --init-from best.pt`).

The pieces, each a plain function the `Trainer` calls:

- `load_init_checkpoint(path)`: the checkpoint, or a clear error (an .onnx file cannot be fine-tuned).
- `head_parameter_names(name, kwargs)`: the classifier head, found by building the architecture for
  K and K+1 classes and keeping the parameters whose shape changes. That is the last nn.Linear of a
  VGG/ResNet, the final classifier conv of mini-Xception, and a NASNet's auxiliary head too, without
  a list of layer names per model.
- `transfer_weights(model, ckpt, labels, head)`: copies every tensor whose name and shape match; the
  head is kept when the label set is the same, otherwise it is new, with the rows of labels the
  checkpoint knows (exactly or through the synonym map: `anger` <- `angry`) copied over.
- `param_groups(...)`: head at the full learning rate, backbone at `--backbone-lr-mult` times it.
- `set_backbone_frozen(...)`: `--freeze-epochs`: backbone parameters get no gradient and its
  BatchNorm layers keep their running statistics, so the backbone is bit-for-bit unchanged.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import nn

from .checkpoint import load_checkpoint, preprocessing_of
from .errors import ModelError
from .labels import canonical_name
from .models import create_model
from .preprocessing import Preprocessing


@dataclass
class TransferReport:
    """What `--init-from` did: which tensors came from the checkpoint and which start fresh."""

    source: str
    source_labels: list[str]
    labels: list[str]
    head: list[str]                    # head layers (module names)
    head_kept: bool                    # same label set: the checkpoint's head as it was
    head_rows: dict[str, str | None]   # new label -> checkpoint label its row was copied from (None: fresh)
    loaded: list[str] = field(default_factory=list)         # tensors copied from the checkpoint
    reinitialised: list[str] = field(default_factory=list)  # tensors at their fresh initialisation
    unused: list[str] = field(default_factory=list)         # checkpoint tensors the model has no place for

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @property
    def fresh_rows(self) -> list[str]:
        """Labels whose head row starts at its random initialisation (the checkpoint had no such label)."""
        return [] if self.head_kept else [new for new, old in self.head_rows.items() if not old]

    def summary(self) -> str:
        in_head = [n for n in self.reinitialised if n.rsplit('.', 1)[0] in self.head]
        body = [n for n in self.reinitialised if n.rsplit('.', 1)[0] not in self.head]
        first = f"fine-tuning from {self.source}: {len(self.loaded)} tensors loaded"
        if in_head:
            first += f", {len(in_head)} head tensors rebuilt for the labels (rows below)"
        if body:
            first += f", {len(body)} re-initialised"
        lines = [first]
        if self.head_kept:
            lines.append(f"  head {', '.join(self.head)}: kept (same labels: {', '.join(self.labels)})")
        else:
            copied = [f"{new}<-{old}" if new != old else new for new, old in self.head_rows.items() if old]
            fresh = [new for new, old in self.head_rows.items() if not old]
            lines.append(f"  head {', '.join(self.head)}: new, for {len(self.labels)} labels "
                         f"(checkpoint had {len(self.source_labels)})")
            lines.append(f"    rows from the checkpoint: {', '.join(copied) or 'none'}")
            lines.append(f"    rows initialised fresh:   {', '.join(fresh) or 'none'}")
        if body:
            lines.append(f"  re-initialised outside the head (no matching name/shape): {', '.join(body)}")
        return "\n".join(lines)


@dataclass
class FineTuneStart:
    """A model ready to fine-tune, with everything the Trainer needs to know about it."""

    model: nn.Module
    model_name: str
    model_kwargs: dict[str, Any]
    preprocessing: Preprocessing
    head_params: list[str]
    report: TransferReport


# ---------------------------------------------------------------------------- loading


def load_init_checkpoint(path: str | Path) -> dict[str, Any]:
    """The training checkpoint to start from; an ONNX model is refused with the reason and the fix."""
    return load_checkpoint(check_init_path(path))


def check_init_path(path: str | Path) -> Path:
    """Fail early (before a dataset is read) on an --init-from that cannot be a training checkpoint.

    `default` names the checkpoint shipped beside the default model (`nasfer.weights.default_checkpoint_path`).
    """
    if str(path) == "default":
        from .weights import default_checkpoint_path

        return default_checkpoint_path()
    p = Path(path).expanduser()
    if p.suffix.lower() == ".onnx":
        hint = ""
        card = p.with_suffix(".json")
        if card.is_file():
            try:
                command = (json.loads(card.read_text()).get("training") or {}).get("command")
            except (json.JSONDecodeError, UnicodeDecodeError, AttributeError):
                command = None
            if command:
                hint = f" This model was trained by `{command}`: its run directory holds best.pt."
        raise ModelError(
            f"{p}: an ONNX model is an inference graph without its training state; fine-tuning needs the "
            f"training checkpoint (.pt) the model was exported from, e.g. runs/<name>/best.pt.{hint}")
    if p.is_dir():  # before: "checkpoint not found", for a folder that is there
        best = p / "best.pt"
        hint = f": its best checkpoint is --init-from {best}" if best.is_file() else ""
        raise ModelError(f"{p} is a folder; --init-from takes a training checkpoint file (.pt){hint}")
    if not p.exists() and p.suffix == "" and len(p.parts) == 1:
        from .weights import shipped_models

        if str(path) in shipped_models():
            raise ModelError(f"{path}: the shipped model '{path}' is an ONNX graph only, without a training "
                             "checkpoint; the shipped checkpoint for fine-tuning is --init-from default")
    if not p.is_file():
        raise ModelError(f"{p}: --init-from checkpoint not found")
    return p


# ---------------------------------------------------------------------------- the head


def _probe(name: str, kwargs: dict[str, Any], num_classes: int) -> dict[str, torch.Size]:
    args = {**kwargs, "num_classes": num_classes}
    try:
        with torch.device("meta"):
            model = create_model(name, **args)
    except Exception:  # a factory that cannot build on the meta device: build it for real (small models)
        model = create_model(name, **args)
    return {k: v.shape for k, v in model.state_dict().items()}


def head_parameter_names(name: str, kwargs: dict[str, Any], model: nn.Module | None = None) -> list[str]:
    """State-dict names of the classifier head: the tensors whose shape depends on the class count.

    Falls back to the last nn.Linear (or, without one, the last Conv2d) of `model` when the probe
    finds nothing, which only an unusual architecture would cause.
    """
    k = int(kwargs.get("num_classes", 7))
    a, b = _probe(name, kwargs, k), _probe(name, kwargs, k + 1)
    names = [n for n in a if n in b and a[n] != b[n]]
    if names or model is None:
        return names
    linears = [(n, m) for n, m in model.named_modules() if isinstance(m, nn.Linear)]
    convs = [(n, m) for n, m in model.named_modules() if isinstance(m, nn.Conv2d)]
    last = (linears or convs or [None])[-1]
    if last is None:
        raise ModelError(f"cannot find the classifier head of model {name!r}")
    return [f"{last[0]}.{p}" for p, _ in last[1].named_parameters(recurse=False)]


def head_modules(head_params: list[str]) -> list[str]:
    return sorted({n.rsplit(".", 1)[0] for n in head_params})


def match_labels(new: list[str], old: list[str]) -> dict[str, str | None]:
    """new label -> the checkpoint label with the same meaning (exact name first, then synonyms)."""

    def canon(label: str) -> str | None:
        try:
            return canonical_name(label, "exclude")
        except ValueError:
            return None

    out: dict[str, str | None] = {}
    for label in new:
        if label in old:
            out[label] = label
            continue
        c = canon(label)
        out[label] = next((o for o in old if c is not None and canon(o) == c), None)
    return out


def transfer_weights(model: nn.Module, ckpt: dict[str, Any], labels: list[str], head_params: list[str],
                     source: str = "checkpoint") -> TransferReport:
    """Load `ckpt`'s weights into `model` where names and shapes match; rebuild the head for `labels`."""
    old_sd = ckpt["state_dict"]
    old_labels = list(ckpt.get("labels", []))
    new_sd = model.state_dict()
    head = set(head_params)
    same_labels = old_labels == list(labels)
    rows = match_labels(list(labels), old_labels)
    report = TransferReport(source=source, source_labels=old_labels, labels=list(labels),
                            head=head_modules(head_params), head_kept=False, head_rows=rows)
    merged = {}
    head_intact = True
    for name, fresh in new_sd.items():
        old = old_sd.get(name)
        if name in head and not same_labels:
            head_intact = False
            merged[name] = fresh.clone()
            if (old is not None and old.dim() == fresh.dim() and old.shape[1:] == fresh.shape[1:]
                    and old.shape[0] == len(old_labels) and fresh.shape[0] == len(labels)):
                for i, label in enumerate(labels):
                    if rows[label] is not None:
                        merged[name][i] = old[old_labels.index(rows[label])].to(fresh.dtype)
            report.reinitialised.append(name)
            continue
        if old is not None and old.shape == fresh.shape:
            merged[name] = old.to(fresh.dtype)
            report.loaded.append(name)
        else:
            merged[name] = fresh
            report.reinitialised.append(name)
            if name in head:
                head_intact = False
    report.unused = [n for n in old_sd if n not in new_sd]
    report.head_kept = same_labels and head_intact
    model.load_state_dict(merged)
    return report


def start_from(path: str | Path, labels: list[str] | tuple[str, ...], *, drop_path: float = 0.0) -> FineTuneStart:
    """Build the checkpoint's architecture for `labels` and transfer its weights (call after seeding)."""
    ckpt = load_init_checkpoint(path)
    name = ckpt["model"]["name"]
    if name == "ensemble":
        raise ModelError(f"{path}: an ensemble cannot be fine-tuned as one model; fine-tune one of its members' "
                         "checkpoints (listed under config.ensemble_of) and ensemble the results again")
    kwargs = dict(ckpt["model"]["kwargs"])
    kwargs["num_classes"] = len(labels)
    if drop_path:
        kwargs["drop_path"] = drop_path
    model = create_model(name, **kwargs)
    head = head_parameter_names(name, kwargs, model)
    report = transfer_weights(model, ckpt, list(labels), head, source=str(path))
    return FineTuneStart(model=model, model_name=name, model_kwargs=kwargs, preprocessing=preprocessing_of(ckpt),
                         head_params=head, report=report)


# ---------------------------------------------------------------------------- optimisation


def param_groups(model: nn.Module, head_params: list[str], lr: float, backbone_lr_mult: float) -> list[dict[str, Any]]:
    """Optimizer groups: the head at `lr`, everything else at `lr * backbone_lr_mult`."""
    head = set(head_params)
    named = list(model.named_parameters())
    groups = [
        {"params": [p for n, p in named if n in head], "lr": lr, "name": "head"},
        {"params": [p for n, p in named if n not in head], "lr": lr * backbone_lr_mult, "name": "backbone"},
    ]
    return [g for g in groups if g["params"]]


def set_backbone_frozen(model: nn.Module, head_params: list[str], frozen: bool) -> None:
    """Freeze (or release) everything but the head. Call after `model.train()`: a frozen backbone's
    BatchNorm layers are put in eval mode so their running statistics do not move either."""
    head = set(head_params)
    head_mods = set(head_modules(head_params))
    for name, p in model.named_parameters():
        if name not in head:
            p.requires_grad_(not frozen)
    if frozen:
        for name, module in model.named_modules():
            if isinstance(module, nn.modules.batchnorm._BatchNorm) and name not in head_mods:
                module.eval()


__all__ = ["TransferReport", "FineTuneStart", "load_init_checkpoint", "check_init_path", "head_parameter_names", "match_labels",
           "transfer_weights", "start_from", "param_groups", "set_backbone_frozen"]
