"""An ensemble of trained models as one module, so it exports to a single ONNX graph.

Its output is the log of the members' (weighted) mean softmax: the softmax that export puts on top of
every model then yields exactly the averaged probabilities, and argmax/CE behave as for any model.
Weights come from `nasfer ensemble --select greedy` (`nasfer.selection`, chosen on validation data).
"""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

from .registry import create_model, register_model


class Ensemble(nn.Module):
    """Members' softmax outputs averaged with `weights` (M,) (default: equal), which must be positive."""

    def __init__(self, members: list[dict[str, Any]], weights: list[float] | None = None):
        super().__init__()
        if len(members) < 2:
            raise ValueError("an ensemble needs at least two members")
        w = [1.0] * len(members) if weights is None else [float(v) for v in weights]
        if len(w) != len(members) or min(w) <= 0:
            raise ValueError(f"ensemble weights must be {len(members)} positive numbers, got {weights}")
        self.members = nn.ModuleList(create_model(m["name"], **m["kwargs"]) for m in members)
        self.register_buffer("weights", torch.tensor(w) / sum(w), persistent=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        probs = torch.stack([torch.softmax(m(x), dim=1) for m in self.members])
        probs = (probs * self.weights.to(probs.dtype)[:, None, None]).sum(0)
        return torch.log(probs.clamp_min(1e-12))


@register_model
def ensemble(members: list[dict[str, Any]], num_classes: int | None = None, in_channels: int | None = None,
             weights: list[float] | None = None) -> nn.Module:
    """`members`: [{"name": registered model, "kwargs": {...}}, ...]; the ensemble maps (N, C, S, S) float
    images to (N, K) log mean probabilities, weighted by `weights` (M,) (default: equal).

    num_classes/in_channels, where given (as the registry's callers do), are passed to members whose
    kwargs leave them out and must equal those of members that set them, else ValueError: an ensemble
    cannot change its members' heads or stems.
    """
    built = []
    for i, member in enumerate(members):
        kwargs = dict(member.get("kwargs") or {})
        for key, wanted in (("num_classes", num_classes), ("in_channels", in_channels)):
            if wanted is None:
                continue
            if key in kwargs and kwargs[key] is not None and int(kwargs[key]) != int(wanted):
                raise ValueError(f"ensemble {key}={wanted}, but member {i} ({member.get('name')}) has "
                                 f"{key}={kwargs[key]}; an ensemble takes these from its members")
            kwargs.setdefault(key, wanted)
        built.append({**member, "kwargs": kwargs})
    return Ensemble(built, weights)


def ensemble_checkpoint(paths: list[str], weights: list[float] | None = None,
                        selection: dict[str, Any] | None = None) -> dict[str, Any]:
    """One checkpoint holding several trained checkpoints as an `ensemble` model, averaged with `weights`
    (default: equal); `selection` (how the members and weights were chosen) is kept in its config.

    The members must agree on labels, preprocessing and input (face crops or whole images, `--detect-faces`),
    or averaging their outputs is meaningless (ModelError).
    Each member's best/scheduled/completed epochs and validation accuracy are kept (`members_training`)
    for the model card.
    """
    from pathlib import Path

    from ..card import epochs_info, run_relative
    from ..checkpoint import build_model, load_checkpoint, make_checkpoint, on_face_crops, preprocessing_of
    from ..errors import ModelError

    ckpts = [load_checkpoint(p) for p in paths]

    first = ckpts[0]
    for path, ck in zip(paths[1:], ckpts[1:]):
        if ck["labels"] != first["labels"]:
            raise ModelError(f"{path}: labels {ck['labels']} differ from {paths[0]}'s {first['labels']}")
        if ck["preprocessing"] != first["preprocessing"]:
            raise ModelError(f"{path}: preprocessing differs from {paths[0]}'s")
    crops = [on_face_crops(ck.get("config") or {}) for ck in ckpts]
    if len(set(crops)) > 1:
        odd = next(i for i, c in enumerate(crops) if c != crops[0])
        raise ModelError(f"{paths[odd]} trained on {'face crops (--detect-faces)' if crops[odd] else 'whole images'} "
                         f"and {paths[0]} on {'face crops (--detect-faces)' if crops[0] else 'whole images'}: "
                         "an ensemble's members must read the same input")
    members = [{"name": ck["model"]["name"], "kwargs": ck["model"]["kwargs"]} for ck in ckpts]
    model = Ensemble(members, weights)
    kwargs: dict[str, Any] = {"members": members}
    if weights is not None:
        kwargs["weights"] = [float(w) for w in weights]
    for module, ck in zip(model.members, ckpts):
        module.load_state_dict(build_model(ck).state_dict())
    return make_checkpoint(
        model=model, model_name="ensemble", model_kwargs=kwargs, labels=first["labels"],
        preprocessing=preprocessing_of(first),
        config={"ensemble_of": [run_relative(p) for p in paths], "members": [ck.get("config", {}) for ck in ckpts],
                **({"selection": selection} if selection else {})},
        metrics={"members": [ck.get("metrics", {}) for ck in ckpts]},
        members_training=[{**epochs_info(ck, Path(p).parent), "val_accuracy": (ck.get("metrics") or {}).get("val_accuracy"),
                           "weights": ck.get("weights"),
                           **({"recovered_from": ck["recovered_from"]} if ck.get("recovered_from") else {})}
                          for p, ck in zip(paths, ckpts)],
    )
