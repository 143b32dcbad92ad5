"""The model card of an exported model: build it from a checkpoint, merge metrics, list its commands.

The card (format in docs/CONTRACTS.md) carries everything a user of the .onnx needs: labels,
preprocessing, tensor names, SHA-256, architecture size, how it was trained (the commands, the best and
completed epochs), measured metrics with how they were recorded, and known limitations. No torch here
beyond what `build_card` needs to count parameters (imported inside it).
"""

from __future__ import annotations

import json
import os
import shlex
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Optional

from .runtime.engine import CARD_FORMAT, sha256_file
from .errors import ModelError

#: Network passes per face for each TTA a graph can have built in.
VIEWS = {False: 1, True: 2, "flip": 2, "ten-crop": 10}

LIMITATIONS = [
    "Trained on FER2013, whose labels are noisy: human agreement on its test images is only about 65%, "
    "so individual predictions are often wrong, especially for disgust and fear (few, ambiguous examples).",
    "Sees a 48x48 grayscale crop: colour, fine detail, context, body language and speech are ignored.",
    "FER2013 is web-scraped faces: mostly frontal, posed or staged expressions, with uneven coverage of "
    "age, skin tone, gender presentation and culture; accuracy differs between groups and has not been audited.",
    "Expressions are not feelings: the model labels facial movements, not what a person experiences.",
    "Not for high-stakes decisions (hiring, education, policing, health, credit, border control) "
    "or for monitoring people without their informed consent.",
    "Depends on the face detector: missed, partial, small (< ~40 px), profile or rolled faces degrade or drop results.",
]


_PATH_KEYS = {"data", "out", "init_from", "genotype", "split_file", "teacher", "path", "run"}


def _public(value: Any, key: str = "") -> Any:
    """Config values safe to publish: path-valued settings keep only their file name (a split file also its run
    directory's name, `run/splits.json`, since every run's split file has the same name)."""
    if isinstance(value, dict):
        return {k: _public(v, k) for k, v in value.items()}
    if isinstance(value, list):
        return [_public(v, key) for v in value]
    if key in _PATH_KEYS and isinstance(value, str) and value:
        return run_relative(value) if key == "split_file" else Path(value).name
    return value


def run_relative(path: str | os.PathLike) -> str:
    """`run/file`: a run directory's file named by that directory and its name (every run has a splits.json and a
    best.pt), the rest of the path left out; just the name where there is no directory."""
    path = Path(path)
    return f"{path.parent.name}/{path.name}" if path.parent.name else path.name


def trained_on(ckpt: dict[str, Any]) -> str | None:
    """File name of the dataset a checkpoint was trained on (None for an ensemble, which lists its members')."""
    data = ((ckpt.get("config") or {}).get("data") or {})
    return Path(str(data["data"])).name if isinstance(data, dict) and data.get("data") else None


def is_fer2013(name: str | None) -> bool:
    """Whether a dataset file name is FER2013's (fer2013.zip, fer2013.csv, ...); None (unknown) counts as FER2013,
    what the shipped models and ensembles of them are trained on."""
    return name is None or name.lower().startswith("fer2013")


def limitations(ckpt: dict[str, Any]) -> list[str]:
    """The card's limitations: LIMITATIONS, with the first (and, without FER2013 pre-training, the FER2013
    coverage one) replaced for a model trained on other data."""
    data = trained_on(ckpt)
    if is_fer2013(data):
        return list(LIMITATIONS)
    init = ((ckpt.get("config") or {}).get("train") or {}).get("init_from")
    first = (f"Trained on {data}, not FER2013" + (f", starting from {Path(str(init)).name} (trained on FER2013)"
                                                  if init else "")
             + ": how far its predictions can be trusted depends on that dataset's labels, size and coverage, "
               "which this card does not know; its metrics here are the only evidence.")
    rest = [item for item in LIMITATIONS[1:] if init or not item.startswith("FER2013 is web-scraped")]
    return [first, *rest]


def train_command(config: dict[str, Any]) -> Optional[str]:
    """The `nasfer train` command line that reproduces a checkpoint's config (non-default flags only)."""
    from .config import DataConfig, TrainConfig, to_flags

    sections = [(config.get("data"), DataConfig), (config.get("train"), TrainConfig)]
    if not all(isinstance(values, dict) for values, _ in sections):
        return None
    parts = ["nasfer", "train"]
    for values, cls in sections:
        parts += to_flags(values, cls)
    return " ".join(shlex.quote(p) for p in parts)


def epochs_info(ckpt: dict[str, Any], run_dir: Path | None = None) -> dict[str, Any]:
    """How long a checkpoint's run trained: best_epoch, scheduled_epochs, epochs_completed, completed.

    best_epoch: the epoch (1-based) whose weights the checkpoint holds (0: a fine-tuning run's starting
    weights, which no epoch beat on validation); scheduled_epochs: the run's
    --epochs; epochs_completed: epochs the run finished, from `history.json` in the run directory (a
    best.pt's own history stops at its best epoch, so it cannot say), None where that file is absent;
    completed: epochs_completed == scheduled_epochs, None when unknown.
    """
    train = ((ckpt.get("config") or {}).get("train") or {})
    scheduled = train.get("epochs")
    best = int(ckpt["epoch"]) + 1 if "epoch" in ckpt else None
    done = None
    history = run_dir / "history.json" if run_dir is not None else None
    if history is not None and history.is_file():
        try:
            done = len(json.loads(history.read_text()))
        except (OSError, ValueError):
            done = None
    if done is None and best is not None and scheduled is not None and best == scheduled:
        done = best  # the best epoch was the last scheduled one
    return {"best_epoch": best, "scheduled_epochs": scheduled, "epochs_completed": done,
            "completed": None if done is None or scheduled is None else done >= scheduled}


def ensemble_command(config: dict[str, Any], members: list[dict[str, Any]]) -> str:
    """The `nasfer ensemble` command line of an ensemble checkpoint's config (with its selection, if any)."""
    selection = config.get("selection")
    if not isinstance(selection, dict):
        return "nasfer ensemble --checkpoints " + " ".join(
            f"{(m.get('train') or {}).get('out', 'run')}/best.pt" for m in members) + " --out ensemble.pt"
    candidates = [c.get("checkpoint", "?") for c in selection.get("candidates", [])]
    data = next(((m.get("data") or {}).get("data") for m in members if (m.get("data") or {}).get("data")), "DATA")
    return (f"nasfer ensemble --checkpoints {' '.join(candidates)} --select greedy --data {Path(str(data)).name} "
            f"--split-file {selection.get('validation_split')} --rounds {selection.get('rounds')}"
            + (f" --max-members {selection['max_members']}" if selection.get("max_members") else "")
            + ("" if selection.get("tta") else " --no-tta") + f" --out {selection.get('out') or 'ensemble.pt'}")


def training_info(ckpt: dict[str, Any], run_dir: Path | None = None) -> dict[str, Any]:
    """The card's `training` section from a checkpoint's config, history and metrics.

    `commands`: the command lines that reproduce the checkpoint (one per training run, then `nasfer
    ensemble` for an ensemble); `run_dir`: the run directory (for `epochs_info`).
    """
    config = _public(dict(ckpt.get("config") or {}))
    for train in [config.get("train"), *(m.get("train") for m in config.get("members") or [] if isinstance(m, dict))]:
        if isinstance(train, dict) and train.get("genotype"):
            train["arch"] = None  # unused: the architecture file decides (the card's `architecture` says what)
    history = list(ckpt.get("history") or [])
    metrics = dict(ckpt.get("metrics") or {})
    members = config.get("members")
    if isinstance(members, list):  # reproduced by training each member, then `nasfer ensemble` over their best.pt
        commands = [c or "(member trained outside nasfer train)" for c in (train_command(m) for m in members)]
        commands.append(ensemble_command(config, members))
    else:
        commands = [c for c in [train_command(config)] if c]
    info: dict[str, Any] = {
        "commands": commands,
        "config": config,
        "data": (config.get("data") or {}).get("data") if isinstance(config.get("data"), dict) else None,
        **epochs_info(ckpt, run_dir),
        "val_accuracy": metrics.get("val_accuracy"),
        "best_val_accuracy": metrics.get("best_val_accuracy"),
    }
    if isinstance(config.get("distillation"), dict):  # knowledge distillation: which teacher, alpha, T
        info["teacher"] = config["distillation"]
    if isinstance(ckpt.get("members_training"), list):
        info["members"] = ckpt["members_training"]
    if isinstance(config.get("selection"), dict):  # members and weights chosen on validation images (once)
        info["selection"] = config.pop("selection")
    for key in ("n_train", "n_val", "skipped", "finetune"):
        if key in ckpt:
            info[key] = _public(ckpt[key]) if isinstance(ckpt[key], dict) else ckpt[key]
    if history:
        info["history"] = [{k: round(v, 5) if isinstance(v, float) else v for k, v in row.items()}
                           for row in history if isinstance(row, dict)]
    return info


def reproduce_commands(card: dict[str, Any]) -> list[str]:
    """Every command that made the card's model and its recorded test score, in order.

    Training (`training.commands`), export (`export.command`), where the fp32 graph was rebuilt from an
    earlier int8 one, that one's quantization and the rebuild (`dequantized_from`, scripts/dequantize_qdq.py), quantization
    (`quantization.command`) and each recorded score's command (`metrics.<split>.recorded.command`).
    """
    steps = list((card.get("training") or {}).get("commands") or [])
    rebuilt = card.get("dequantized_from") or {}
    steps += [c for c in [(card.get("export") or {}).get("command"), rebuilt.get("quantization_command"),
                          rebuilt.get("command"), (card.get("quantization") or {}).get("command")] if c]
    for entry in (card.get("metrics") or {}).values():
        command = (entry.get("recorded") or {}).get("command") if isinstance(entry, dict) else None
        if command:
            steps.append(command)
    return steps


def evaluation_commands(onnx_file: str, data: str | None = None) -> dict[str, str]:
    """How to reproduce the card's metrics: on FER2013's PublicTest and, as a cross-check, CK+ (the design's
    second dataset); for a model trained on another dataset `data`, on that dataset's test split."""
    if not is_fer2013(data):
        return {"own_data": f"nasfer evaluate --data {data} --model {onnx_file} --json metrics.json "
                            "(its test split: a folder named test, else everything)"}
    return {
        "fer2013": f"nasfer evaluate --data fer2013.zip --split PublicTest --model {onnx_file} --json metrics.json",
        "ckplus": f"nasfer evaluate --data CK+48 --model {onnx_file} --json ckplus.json "
                  "(contempt, which FER2013 lacks, is left out; --contempt neutral scores it as neutral, as the design did)",
    }


def build_card(ckpt: dict[str, Any], model, onnx_path: str | os.PathLike, *, name: str, opset: int,
               tta: bool | str | None, max_abs_diff: float | None, command: str | None = None,
               run_dir: Path | None = None) -> dict[str, Any]:
    """The model card of an exported checkpoint (see docs/CONTRACTS.md)."""
    from importlib.metadata import version

    from .checkpoint import preprocessing_of
    from .models.baselines import count_flops, count_params

    spec = preprocessing_of(ckpt)
    kwargs = dict(ckpt["model"]["kwargs"])
    genotype = kwargs.pop("genotype", None)
    flops = count_flops(model, size=spec.size, in_channels=spec.channels)
    return {
        "format": CARD_FORMAT,
        "name": name,
        "labels": list(ckpt["labels"]),
        "preprocessing": spec.to_dict(),
        "onnx": {"file": Path(onnx_path).name, "input": "input", "output": "probs", "opset": opset,
                 "sha256": sha256_file(onnx_path), "tta": True if tta in (True, "flip") else (tta or False)},
        "architecture": {"name": ckpt["model"]["name"], "kwargs": kwargs, "genotype": genotype,
                         "params": count_params(model), "flops": flops * VIEWS[tta or False],
                         **architecture_search(ckpt)},
        "training": training_info(ckpt, run_dir),
        "metrics": {},
        "evaluation": evaluation_commands(Path(onnx_path).name, trained_on(ckpt)),
        "limitations": limitations(ckpt),
        "export": {"date": datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ"),
                   "torch": version("torch"), "onnx": version("onnx"), "onnxruntime": version("onnxruntime"),
                   "parity_max_abs_diff": max_abs_diff, "command": command},
    }


def architecture_search(ckpt: dict[str, Any]) -> dict[str, Any]:
    """{"search": ...}: the `nasfer search` run that found the checkpoint's architecture (space, strategy, seed,
    rungs, the reward's fidelity and its Kendall tau with full training where calibrated), or {}."""
    record = (ckpt.get("config") or {}).get("search")
    return {"search": _public(record)} if isinstance(record, dict) else {}


def load_metrics(path: str | os.PathLike) -> dict[str, Any]:
    """An evaluation JSON file as a dict (ModelError if it is not one)."""
    try:
        data = json.loads(Path(path).read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ModelError(f"{path}: metrics file not found") from None
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ModelError(f"{path}: not a readable metrics JSON ({exc})") from None
    if not isinstance(data, dict):
        raise ModelError(f"{path}: metrics JSON must be an object (the output of `nasfer evaluate --json`)")
    return data


def merge_metrics(card: dict[str, Any], metrics: dict[str, Any], split: str | None = None) -> dict[str, Any]:
    """`card` with `metrics` stored under `split` (default: the metrics' own 'split' field, else 'test')."""
    split = split or str(metrics.get("split") or "test")
    return {**card, "metrics": {**(card.get("metrics") or {}), split: metrics}}


def write_card(path: str | os.PathLike, card: dict[str, Any]) -> None:
    """Write the card atomically (readers never see half a card)."""
    from .atomic import write_text_atomic

    write_text_atomic(path, json.dumps(card, indent=2, ensure_ascii=False) + "\n")


__all__ = ["LIMITATIONS", "VIEWS", "build_card", "epochs_info", "evaluation_commands", "load_metrics", "run_relative",
           "trained_on",
           "merge_metrics", "reproduce_commands", "train_command", "training_info", "write_card"]
