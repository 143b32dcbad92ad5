"""Dataclass configs whose fields are the CLI flags, one to one.

`add_arguments(parser, Config)` turns every field into `--field-name` (help from the field's
`help` metadata, choices from `Literal` types, `--x/--no-x` for booleans) and
`from_args(Config, namespace)` builds the config back, so a flag can never exist without a field.
Components that are not part of the training spine keep their config beside their code
(e.g. `nasfer.nas.search.SearchConfig`, `nasfer.service.config.ServeConfig`) and use the same helpers.
"""

from __future__ import annotations

import argparse
import dataclasses
import functools
import types
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal, Optional


def option(default: Any, help: str, *, flag: str | None = None, cli: bool = True, **kwargs: Any) -> Any:
    """A dataclass field carrying its CLI help text (and optionally a different flag name); `cli=False`: no flag
    (a field the command fills itself)."""
    meta: dict[str, Any] = {"help": help}
    if flag:
        meta["flag"] = flag
    if not cli:
        meta["cli"] = False
    if isinstance(default, (list, dict, set)):
        return field(default_factory=lambda: type(default)(default), metadata=meta, **kwargs)
    return field(default=default, metadata=meta, **kwargs)


def flag_of(f: dataclasses.Field) -> str:
    """The CLI flag of a config field: its `flag` metadata, else `--field-name`."""
    return f.metadata.get("flag") or "--" + f.name.replace("_", "-")


def changed_flags(cfg: Any, names: typing.Sequence[str]) -> list[str]:
    """The flags, in `names`' order, of the fields of dataclass instance `cfg` that differ from their defaults
    (a boolean switched off by its default-on flag as `--no-x`): for "only applies with ..." checks."""
    defaults, fields = type(cfg)(), {f.name: f for f in dataclasses.fields(cfg)}
    out = []
    for name in names:
        value = getattr(cfg, name)
        if value != getattr(defaults, name):
            flag = flag_of(fields[name])
            out.append("--no-" + flag[2:] if value is False else flag)
    return out


def _unwrap_optional(tp: Any) -> tuple[Any, bool]:
    origin = typing.get_origin(tp)
    if origin in (typing.Union, types.UnionType):
        args = [a for a in typing.get_args(tp) if a is not type(None)]
        if len(args) == 1:
            return args[0], True
    return tp, False


def add_arguments(parser: argparse.ArgumentParser, cls: type, *, exclude: tuple[str, ...] = ()) -> None:
    """Add one flag per field of dataclass `cls` to `parser`."""
    hints = typing.get_type_hints(cls)
    for f in dataclasses.fields(cls):
        if f.name in exclude or not f.init or f.metadata.get("cli") is False:
            continue
        tp, _ = _unwrap_optional(hints[f.name])
        flag = flag_of(f)
        default = f.default if f.default is not dataclasses.MISSING else f.default_factory()  # type: ignore[misc]
        kwargs: dict[str, Any] = {"dest": f.name, "default": default, "help": f.metadata.get("help", "")}
        if default not in (None, "", (), [], {}) and tp is not bool and "(default:" not in kwargs["help"]:
            shown = " ".join(map(str, default)) if isinstance(default, (list, tuple)) else default
            kwargs["help"] += f" (default: {shown})"
        elif tp is bool and default is True and "(default:" not in kwargs["help"]:  # on unless --no-FLAG
            kwargs["help"] += " (default: on)"
        if tp is bool:
            kwargs["action"] = argparse.BooleanOptionalAction
        elif typing.get_origin(tp) is Literal:
            choices = typing.get_args(tp)
            kwargs["choices"] = choices
            kwargs["type"] = type(choices[0])
        elif typing.get_origin(tp) in (list, tuple):
            (inner, *_) = typing.get_args(tp) or (str,)
            kwargs["nargs"] = "+"
            kwargs["type"] = inner if inner in (int, float, str) else str
        elif tp in (int, float, str):
            kwargs["type"] = tp
        elif tp is Path:
            kwargs["type"] = Path
        else:
            kwargs["type"] = str
        kwargs["action"] = _marking(kwargs.get("action", argparse._StoreAction))
        parser.add_argument(flag, **kwargs)


#: Namespace attribute holding the dests of the flags given on the command line (see `_marking`).
GIVEN = "_given_flags"


@functools.cache
def _marking(action: type) -> type:
    """`action` that also records its dest in the namespace's GIVEN set: a flag given with its default value
    is still given (a preset must not replace it)."""

    class Marking(action):  # type: ignore[misc, valid-type]
        def __call__(self, parser, namespace, values, option_string=None):
            super().__call__(parser, namespace, values, option_string)
            given = getattr(namespace, GIVEN, None)
            if given is None:
                given = set()
                setattr(namespace, GIVEN, given)
            given.add(self.dest)

    return Marking


def from_args(cls: type, args: argparse.Namespace, **overrides: Any) -> Any:
    """Build `cls` from the parsed namespace (fields absent from it keep their defaults). A field named
    `explicit` (as TrainConfig has) receives the names of the fields given as flags or as `overrides`."""
    values = {f.name: getattr(args, f.name) for f in dataclasses.fields(cls)
              if f.init and hasattr(args, f.name) and f.metadata.get("cli") is not False}
    values.update(overrides)
    if "explicit" in {f.name for f in dataclasses.fields(cls)}:
        given = set(getattr(args, GIVEN, set())) | set(overrides)
        values["explicit"] = tuple(sorted(n for n in given if n in values and n != "explicit"))
    hints = typing.get_type_hints(cls)
    for name, value in list(values.items()):
        tp, _ = _unwrap_optional(hints[name])
        if typing.get_origin(tp) is tuple and isinstance(value, list):
            values[name] = tuple(value)
    return cls(**values)


def to_flags(values: typing.Mapping[str, Any], cls: type) -> list[str]:
    """The CLI flags that reproduce `values` (field name -> value) of dataclass `cls`: non-default fields only.

    The inverse of `add_arguments`: `--field-name VALUE`, `--x`/`--no-x` for booleans, lists and tuples as
    several values; None and default values are left out. Fields absent from `values` are skipped, so a
    config read back from JSON (tuples as lists) gives the same flags as the dataclass itself.
    """
    defaults = cls()
    parts: list[str] = []
    explicit = set(values.get("explicit") or ())
    for f in dataclasses.fields(cls):
        if not f.init or f.name not in values or f.metadata.get("cli") is False:
            continue
        value, default = values[f.name], getattr(defaults, f.name)
        value = list(value) if isinstance(value, tuple) else value
        default = list(default) if isinstance(default, tuple) else default
        if value is None or (value == default and f.name not in explicit):
            continue
        flag = flag_of(f)
        if isinstance(value, bool):
            parts.append(flag if value else "--no-" + flag[2:])
        elif isinstance(value, list):
            parts += [flag, *(str(v) for v in value)]
        else:
            parts += [flag, str(value)]
    return parts


def to_dict(cfg: Any) -> dict[str, Any]:
    """JSON-safe dict of a config (paths as strings)."""

    def convert(v: Any) -> Any:
        if isinstance(v, Path):
            return str(v)
        if isinstance(v, (list, tuple)):
            return [convert(x) for x in v]
        if isinstance(v, dict):
            return {k: convert(x) for k, x in v.items()}
        return v

    return {k: convert(v) for k, v in dataclasses.asdict(cfg).items()}


@dataclass
class DataConfig:
    """Where the data is and how to read it."""

    data: str = option("", "dataset path: fer2013.csv, a Kaggle/CK+ zip or folder, or any <class>/<image> folder")
    dataset: Literal["auto", "fer2013", "fer2013-csv", "ckplus", "folder"] = option("auto", "dataset format")
    contempt: Literal["exclude", "neutral"] = option("exclude", "what CK+ 'contempt' becomes (no FER2013 label)")
    strict: bool = option(False, "fail on the first bad row or image instead of skipping and counting it")


@dataclass
class TrainConfig:
    """Everything `nasfer train` needs; `--preset` fills groups of these from a named recipe."""

    arch: str = option("vgg", "registered model name (see `nasfer models list`)")
    genotype: Optional[str] = option(None, "architecture JSON file (a search's best_arch.json: a NASNet genotype or a macro-space spec): train the "
                                          "network it describes instead of --arch")
    out: str = option("runs/train", "run directory (checkpoints, history, plots); an existing one is resumed")
    preset: Optional[str] = option(None, "named recipe for the fields below not given as flags (fast, paper, long)")
    explicit: tuple[str, ...] = option((), "fields given as flags (filled by the CLI; a preset leaves them alone)",
                                       cli=False, compare=False)
    epochs: int = option(0, "training epochs (0: auto: 30; with --init-from, scaled to the dataset size: about "
                            "600 optimizer steps, 10 to 60 epochs)")
    batch_size: int = option(0, "global batch size, all processes together (0: auto: 128; with --init-from, "
                                "about a twentieth of the training images, 16 to 128)")
    optimizer: Literal["sgd", "adamw"] = option("adamw", "optimizer")
    lr: float = option(0.0, "peak learning rate (0: auto: 3e-3; 1e-3 with --init-from, whose backbone then "
                            "trains at --backbone-lr-mult times it)")
    momentum: float = option(0.9, "SGD momentum")
    weight_decay: float = option(5e-4, "weight decay")
    schedule: Literal["onecycle", "cosine", "step", "constant"] = option("onecycle", "learning-rate schedule")
    step_milestones: tuple[int, ...] = option((), "epochs after which the 'step' schedule divides the lr")
    step_gamma: float = option(0.2, "factor of the 'step' schedule at each milestone")
    label_smoothing: float = option(0.1, "label smoothing of the cross-entropy")
    class_weighting: Literal["none", "inverse", "sqrt-inverse"] = option("none", "weight the loss by class frequency")
    crop_padding: int = option(4, "random-crop padding in pixels (0: off)")
    flip: bool = option(True, "random horizontal flips")
    rotation: float = option(10.0, "max random rotation in degrees (0: off)")
    scale: float = option(0.1, "max random zoom, as a fraction (0: off)")
    mixup: float = option(0.0, "mixup alpha (0: off)")
    cutout: int = option(0, "cutout square size in pixels (0: off)")
    random_erasing: float = option(0.0, "random-erasing probability per image (Zhong et al. 2017; 0: off)")
    ema_decay: float = option(0.0, "keep an exponential moving average of the weights with this decay per step "
                                   "(e.g. 0.999; 0: off); it is validated beside the raw weights every epoch and "
                                   "best.pt holds whichever scored higher")
    val_fraction: float = option(0.1, "part of Training held out for model selection (stratified)")
    seed: int = option(0, "random seed (data split, init, augmentation)")
    threads: int = option(0, "torch CPU threads (0: torch's default)")
    limit: int = option(0, "use at most this many training images (0: all); for smoke tests")
    tta: bool = option(True, "flip test-time augmentation for the validation score")
    device: str = option("cpu", "torch device (cpu, cuda)")
    precision: Literal["auto", "bf16", "fp32"] = option(
        "auto", "autocast precision of training steps; auto: bf16 where the CPU (AVX-512 BF16, AMX) or GPU computes it "
                "natively, else fp32 (emulated bf16 is several times slower); a resumed run keeps its own")
    width: int = option(0, "model width override, if the model has one (0: the model's default)")
    cells: int = option(0, "NASNet cells per stack: the N of NASNet-A's 'N @ F' (Zoph et al. 2018), with --width "
                           "as F (0: the model's default); NASNet models only")
    drop_path: float = option(0.0, "drop-path probability for NASNet models")
    # -- transfer learning and custom datasets (see docs/custom-data.md)
    init_from: Optional[str] = option(
        None, "fine-tune: start from this training checkpoint (.pt, or 'default' for the shipped model's); architecture and preprocessing come from it, "
              "weights are loaded where names and shapes match, the classifier head is rebuilt for a new label set")
    freeze_epochs: int = option(0, "with --init-from: train only the classifier head for the first N epochs")
    backbone_lr_mult: float = option(0.1, "with --init-from: learning-rate factor of the pretrained backbone "
                                          "(the head gets the full --lr)")
    label_set: Literal["canonical", "folders"] = option(
        "canonical", "labels: the 7 canonical emotions (folder names mapped with synonyms), or one class per folder name")
    test_fraction: float = option(0.1, "datasets without a test split of their own (no test/ folder or FER2013 test files): part held out as test (stratified, "
                                       "seeded; scored into test.json); --val-fraction is then taken from the rest")
    split_file: Optional[str] = option(None, "reuse a split file (JSON source -> train/val/test, as written to "
                                             "<out>/splits.json) instead of drawing the split")
    detect_faces: bool = option(False, "crop the face out of every image with the Haar detector before training "
                                       "(for photos that are not face crops already)")
    # -- knowledge distillation (nasfer.distill)
    teacher: Optional[str] = option(None, "distil from this model: a shipped model's name (default, fast), an .onnx "
                                          "or a training checkpoint; its outputs are computed once and cached")
    distill_alpha: float = option(0.5, "with --teacher: weight of the teacher's soft targets in the loss "
                                       "(1 - alpha on the hard labels)")
    distill_temperature: float = option(4.0, "with --teacher: softmax temperature T of the soft targets "
                                             "(the KL term is scaled by T^2)")

    def validate(self) -> "TrainConfig":
        """Raise ValueError naming the first impossible setting (0 stays "auto"/"off" where the help says so;
        NaN and infinities are refused); return self. Checked before any data is read."""
        from .validation import check, finite, threads_check

        flags = {f.name: flag_of(f) for f in dataclasses.fields(self)}

        def within(name: str, low: float, high: float, *, high_open: bool = False) -> tuple[bool, str]:
            value = getattr(self, name)
            ok = low <= value < high if high_open else low <= value <= high
            return ok, f"{flags[name]} must be in [{low:g}, {high:g}{')' if high_open else ']'}, got {value:g}"

        def at_least(name: str, low: float) -> tuple[bool, str]:
            value = getattr(self, name)
            return finite(value) and value >= low, f"{flags[name]} must be a number >= {low:g}, got {value:g}"

        check([*(at_least(n, 0) for n in ("epochs", "batch_size", "lr", "weight_decay", "crop_padding", "mixup",
                                          "cutout", "limit", "width", "cells", "freeze_epochs", "backbone_lr_mult",
                                          "seed")),
               threads_check(self.threads, zero="torch's default"),
               within("momentum", 0, 1, high_open=True), within("step_gamma", 0, 1),
               within("label_smoothing", 0, 1, high_open=True), within("rotation", 0, 180),
               within("scale", 0, 1, high_open=True), within("random_erasing", 0, 1),
               within("ema_decay", 0, 1, high_open=True), within("val_fraction", 0, 1, high_open=True),
               within("test_fraction", 0, 1, high_open=True), within("drop_path", 0, 1, high_open=True),
               within("distill_alpha", 0, 1),
               (finite(self.distill_temperature) and self.distill_temperature > 0,
                f"--distill-temperature must be a number > 0, got {self.distill_temperature:g}"),
               (all(m >= 1 for m in self.step_milestones),
                f"--step-milestones must be epochs >= 1, got {' '.join(map(str, self.step_milestones))}")])
        architecture = [f"--{n}" for n in ("arch", "genotype", "width", "cells")
                        if (n in self.explicit if n == "arch" else getattr(self, n))]
        check([(not (self.init_from and architecture),
                f"{', '.join(architecture)} with --init-from: the architecture comes from the checkpoint"),
               (not self.cells or bool(self.genotype) or self.arch.startswith("nasnet"),
                f"--cells sets the cells per stack of a NASNet model; {self.arch!r} has none"),
               (self.arch != "ensemble", "--arch ensemble: an ensemble is made from trained checkpoints by `nasfer "
                                         "ensemble`, not trained"),
               # before: accepted and silently without effect (a flag the help documents "with --init-from" or
               # "with --teacher", given without it)
               (not (self.limit and self.split_file), "--limit with --split-file: the split file names the images "
                                                      "of every role, --limit would be ignored; thin the file instead"),
               ("backbone_lr_mult" not in self.explicit or bool(self.init_from),
                "--backbone-lr-mult sets the learning rate of a pretrained backbone: it needs --init-from"),
               *((name not in self.explicit or bool(self.teacher), f"{flags[name]} weighs a teacher's soft targets: "
                  "it needs --teacher") for name in ("distill_alpha", "distill_temperature"))])
        return self


#: Named recipes. `paper` is the original design: SGD momentum 0.9, lr 0.001 divided by 5 after
#: epochs 59 and 89, 180 epochs, batch 16.
PRESETS: dict[str, dict[str, Any]] = {
    "paper": {
        "optimizer": "sgd", "lr": 1e-3, "momentum": 0.9, "schedule": "step",
        "step_milestones": (59, 89), "step_gamma": 0.2, "epochs": 180, "batch_size": 16,
    },
    # Long schedule for ensemble members (what the 72-73% FER2013 VGGs share: hundreds of epochs, crops + flips,
    # random erasing; Pramerdorfer & Kampel 2016, Khaireddin & Chen 2021) plus a weight EMA.
    "long": {
        "optimizer": "adamw", "lr": 3e-3, "schedule": "onecycle", "epochs": 150, "batch_size": 128,
        "random_erasing": 0.5, "ema_decay": 0.999,
    },
    "fast": {
        "optimizer": "adamw", "lr": 3e-3, "schedule": "onecycle", "epochs": 15, "batch_size": 128,
        "label_smoothing": 0.1, "weight_decay": 5e-4,
    },
}


#: What the automatic (0) values of epochs, batch_size and lr become: from scratch, and fine-tuning (--init-from).
SCRATCH_DEFAULTS: dict[str, Any] = {"epochs": 30, "batch_size": 128, "lr": 3e-3}
FINETUNE_DEFAULTS: dict[str, Any] = {"lr": 1e-3, "steps": 600, "min_epochs": 10, "max_epochs": 60,
                                     "images_per_batch_fraction": 20, "min_batch": 16, "max_batch": 128}


def resolve_auto(cfg: TrainConfig, n_train: int) -> TrainConfig:
    """`cfg` with its automatic (0) epochs, batch size and learning rate made concrete for `n_train` images.

    From scratch: SCRATCH_DEFAULTS. Fine-tuning (--init-from): lr 1e-3 (backbone x --backbone-lr-mult), a
    batch of about n_train / 20 (a power of two in 16..128) and enough epochs for about 600 optimizer steps
    (10..60 epochs), so a few hundred images get as many updates as the recipe needs while a large dataset
    still sees every image 10 times. Explicit values are kept.
    """
    changes: dict[str, Any] = {}
    if not cfg.init_from:
        changes = {k: v for k, v in SCRATCH_DEFAULTS.items() if not getattr(cfg, k)}
        return dataclasses.replace(cfg, **changes) if changes else cfg
    ft = FINETUNE_DEFAULTS
    batch = cfg.batch_size
    if not batch:
        target = max(1, n_train // ft["images_per_batch_fraction"])
        batch = changes["batch_size"] = int(min(ft["max_batch"], max(ft["min_batch"], 1 << (target.bit_length() - 1))))
    if not cfg.lr:
        changes["lr"] = ft["lr"]
    if not cfg.epochs:
        steps_per_epoch = max(1, -(-n_train // batch))
        changes["epochs"] = int(min(ft["max_epochs"], max(ft["min_epochs"], -(-ft["steps"] // steps_per_epoch))))
    return dataclasses.replace(cfg, **changes) if changes else cfg


def apply_preset(cfg: TrainConfig) -> TrainConfig:
    """`cfg` with its preset's values in every field not named in `cfg.explicit` (the flags given, also when
    given with their default value) and still at its default: explicit flags win."""
    if not cfg.preset:
        return cfg
    if cfg.preset not in PRESETS:
        raise ValueError(f"unknown preset {cfg.preset!r}; choose one of {', '.join(PRESETS)}")
    defaults = TrainConfig()
    changes = {k: v for k, v in PRESETS[cfg.preset].items()
               if k not in cfg.explicit and getattr(cfg, k) == getattr(defaults, k)}
    return dataclasses.replace(cfg, **changes)
