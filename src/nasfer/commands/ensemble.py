"""Combine trained checkpoints into one ensemble checkpoint (weighted mean of their probabilities).

Examples:
  nasfer ensemble --checkpoints runs/a/best.pt runs/b/best.pt --out runs/ensemble.pt        # equal weights
  nasfer ensemble --checkpoints runs/*/best.pt --select greedy --data fer2013.zip --out runs/ensemble.pt
  nasfer export --checkpoint runs/ensemble.pt --out model.onnx                              # one ONNX graph

`--select greedy` scores every member on the validation images of a split file (default: the first
checkpoint's run's splits.json), with flip TTA as training validates, and keeps the members and weights
that greedy ensemble selection (`nasfer.selection`, Caruana et al. 2004) picks; members it does not pick are
left out of the graph. It refuses members that trained on any of those validation images, members whose
run directory (with its splits.json) is not beside them, and members trained on another dataset.

Every mode refuses a member whose run has not finished its scheduled epochs (its history.json says so;
--allow-incomplete accepts it) and a member file that changes while the command runs (a run still
writing it): the weights written are the weights scored.
"""

from __future__ import annotations

import argparse
from dataclasses import dataclass
from pathlib import Path
from typing import Literal, Optional

from ..config import add_arguments as add_config_arguments
from ..config import changed_flags, from_args, option

NAME = "ensemble"
HELP = "average several trained checkpoints into one model (exports as a single ONNX graph)"


@dataclass
class EnsembleConfig:
    checkpoints: list[str] = option([], "two or more training checkpoints (.pt) with the same labels")
    out: str = option("ensemble.pt", "checkpoint file to write")
    select: Literal["mean", "greedy"] = option(
        "mean", "mean: every member, equal weights; greedy: members and weights chosen on validation images "
                "(greedy ensemble selection with replacement; needs --data)")
    data: Optional[str] = option(None, "dataset the members were trained on (for --select greedy)")
    split_file: Optional[str] = option(None, "split file whose 'val' images score the members (default: the "
                                             "splits.json beside the first checkpoint)")
    rounds: int = option(25, "greedy: additions after the best single member; the best of the rounds is kept "
                             "(a member's weight is how often it was added)")
    max_members: int = option(0, "greedy: at most this many distinct members get a weight (each costs a forward "
                                 "pass per face; 0: no cap)")
    tta: bool = option(True, "greedy: score members with flip TTA (--no-tta: without)")
    threads: int = option(0, "CPU threads for scoring (0: torch's default)")
    allow_incomplete: bool = option(False, "accept members whose runs have not finished their scheduled epochs")

    def validate(self) -> "EnsembleConfig":
        """Raise ValueError naming the first impossible setting, or a greedy-only flag given with --select mean;
        return self."""
        from ..validation import check, threads_check

        if len(self.checkpoints) < 2:
            raise ValueError("--checkpoints needs at least two files")
        from ..runtime.outputs import file_key

        keys = [file_key(path) for path in self.checkpoints]
        if len(set(keys)) < len(keys):
            raise ValueError("--checkpoints names one file twice: an ensemble needs different members")
        if self.select == "mean":
            given = changed_flags(self, ("data", "split_file", "rounds", "max_members", "tta", "threads"))
            if given:
                raise ValueError(f"{', '.join(given)}: for --select greedy (with --select mean nothing is scored)")
        check([(1 <= self.rounds <= MAX_ROUNDS, f"--rounds must be 1..{MAX_ROUNDS}, got {self.rounds}"),
               (self.max_members >= 0, f"--max-members must be >= 0 (0: no cap), got {self.max_members}"),
               threads_check(self.threads, zero="torch's default")])
        return self


#: Most greedy-selection rounds: weights are multiples of 1/(rounds + 1), and finer steps than 1e-4 change nothing.
MAX_ROUNDS = 10_000


def add_arguments(parser: argparse.ArgumentParser) -> None:
    add_config_arguments(parser, EnsembleConfig)


def run(args: argparse.Namespace) -> int:
    return write_ensemble(from_args(EnsembleConfig, args).validate(), print)


def write_ensemble(cfg: EnsembleConfig, log=print, predictions: dict | None = None) -> int:
    """Build and save the ensemble `cfg` describes; return the exit status (0, or 1 when greedy selection keeps
    a single member and nothing is written). `log`: called with each progress line.

    `predictions`: a dict kept by the caller across calls on the same members (e.g. one call per --max-members
    cap, as benchmarks/default_candidates.py does); each member's validation predictions are stored in it under
    (the file's SHA-256, TTA on/off, split file, dataset) and reused instead of scored again.

    Errors: DataError (a member unfinished, changed while running, or trained on validation images), ValueError.
    """
    from ..checkpoint import save_checkpoint
    from ..errors import DataError
    from ..models.ensemble import ensemble_checkpoint
    from ..runtime.engine import sha256_file

    from ..runtime.outputs import check_outputs

    # before: --out onto a member replaced that run's checkpoint with the ensemble; --out onto a folder left a .tmp
    check_outputs([(f"--out {cfg.out}", cfg.out)], cfg.checkpoints)
    paths, weights, selection = list(cfg.checkpoints), None, None
    files = {path: member_file(path, cfg.allow_incomplete) for path in cfg.checkpoints}
    if cfg.select == "greedy":
        paths, weights, selection = select_members(cfg, log, files, predictions)
        selection["out"] = Path(cfg.out).name
        if len(paths) == 1:
            log(f"greedy selection kept only {paths[0]}: no ensemble of these members scores higher on "
                "validation than it does alone; no ensemble written (use that checkpoint, or --select mean)")
            return 1
    ensemble = ensemble_checkpoint(paths, weights, selection)
    for path in paths:
        if sha256_file(path) != files[path]["sha256"]:
            raise DataError(f"{path} changed while this command ran (is its run still training?); nothing written")
    save_checkpoint(cfg.out, ensemble)
    log(f"{cfg.out}: ensemble of {len(paths)} models")
    tta = " --tta" if cfg.select == "mean" or cfg.tta else ""
    log(f"export it as one graph: nasfer export --checkpoint {cfg.out} --out {Path(cfg.out).with_suffix('.onnx')}{tta}"
        + ("  (--tta: the selection scored the members with flip TTA)" if selection and cfg.tta else ""))
    return 0


def member_file(path: str, allow_incomplete: bool = False) -> dict:
    """What the card keeps of a member file: sha256, its run's epochs (`card.epochs_info`), the weights it
    holds (ema or raw), its training command, its dataset's file name, and for a member recovered from an
    exported graph (scripts/member_from_onnx.py) where it came from (`recovered_from`). DataError for an
    unreadable file or, unless `allow_incomplete`, a run that has not finished its scheduled epochs."""
    from ..card import epochs_info, train_command, trained_on
    from ..checkpoint import load_checkpoint
    from ..errors import DataError
    from ..runtime.engine import sha256_file

    if not Path(path).is_file():
        raise DataError(f"{path}: no such checkpoint file" if not Path(path).exists() else f"{path}: not a file")
    sha = sha256_file(path)
    ckpt = load_checkpoint(path)
    epochs = epochs_info(ckpt, Path(path).parent)
    if epochs.get("completed") is False and not allow_incomplete:
        raise DataError(f"{path}: its run has finished {epochs['epochs_completed']} of {epochs['scheduled_epochs']} "
                        "epochs (still training, or stopped); finish it, or pass --allow-incomplete")
    return {"sha256": sha, "epochs": epochs, "weights": ckpt.get("weights"),
            "command": train_command(ckpt.get("config") or {}), "dataset": trained_on(ckpt),
            **({"recovered_from": ckpt["recovered_from"]} if ckpt.get("recovered_from") else {})}


def check_member(path: str, val: set[str], split_file: Path, data: str, dataset: str | None) -> None:
    """DataError unless `path` provably held out every image of `val`: its run's splits.json (beside it) must
    give none of them the train role, and its recorded dataset must be `data` (by file name)."""
    from ..data.splits import read_split_file
    from ..errors import DataError

    own = Path(path).parent / "splits.json"
    if not own.is_file():
        raise DataError(f"{path}: no splits.json beside it, so which images it trained on cannot be checked; "
                        "select among checkpoints left in their run directories")
    roles = read_split_file(own)
    if not val <= set(roles):
        raise DataError(f"{path}: its splits.json names other images than {split_file}: trained on another "
                        "dataset (or another version of it)")
    seen = sum(1 for k, role in roles.items() if role == "train" and k in val)
    if seen:
        raise DataError(f"{path}: trained on {seen} of the {len(val)} validation images of {split_file}; "
                        "select on a split every member held out (train them with the same --split-file)")
    if dataset and dataset != Path(data).name:
        raise DataError(f"{path}: trained on {dataset}, not on --data {Path(data).name}")


def select_members(cfg: EnsembleConfig, log, files: dict[str, dict],
                   predictions: dict | None = None) -> tuple[list[str], list[float], dict]:
    """(checkpoints kept, their weights, the selection record for the card), chosen on validation images;
    `files`: `member_file` of each checkpoint; `predictions`: see `write_ensemble`.

    DataError: no --data, no split file, or a member trained on validation images of the split.
    """
    import numpy as np

    from ..card import run_relative
    from ..data.splits import read_split_file
    from ..errors import DataError
    from ..evaluate import EvalConfig, predict_split
    from ..selection import CRITERION, greedy_selection, validation_score

    if not cfg.data:
        raise DataError("--select greedy scores the members on validation images: give --data (the dataset "
                        "they were trained on)")
    split_file = Path(cfg.split_file or Path(cfg.checkpoints[0]).parent / "splits.json")
    if not split_file.is_file():
        raise DataError(f"{split_file}: no split file; give --split-file (a run's splits.json)")
    val = {k for k, role in read_split_file(split_file).items() if role == "val"}
    for path in cfg.checkpoints:
        check_member(path, val, split_file, cfg.data, files[path]["dataset"])
    probs, y, scores = [], None, []
    predictions = {} if predictions is None else predictions
    for path in cfg.checkpoints:
        key = (files[path]["sha256"], cfg.tta, str(split_file.resolve()), str(Path(cfg.data).expanduser().resolve()))
        if key not in predictions:
            predictions[key] = predict_split(EvalConfig(data=cfg.data, split="val", split_file=str(split_file),
                                                        model=path, tta=cfg.tta, threads=cfg.threads))
        pred = predictions[key]
        if y is not None and not np.array_equal(y, pred.y_true):
            raise DataError(f"{path}: its labels order the validation images differently from the first member's")
        y = pred.y_true
        probs.append(pred.probs)
        scores.append(validation_score(pred.probs, y))
        log(f"{path}: validation accuracy {scores[-1][0]:.4f}, log-loss {scores[-1][1]:.4f} ({len(y)} images)")
    stacked = np.stack(probs)
    weights = greedy_selection(stacked, y, cfg.rounds, cfg.max_members)
    chosen = [i for i, w in enumerate(weights) if w > 0]
    mean_acc, mean_nll = validation_score(stacked.mean(0), y)
    sel_acc, sel_nll = validation_score(np.tensordot(weights, stacked, axes=1), y)
    log(f"equal-weight mean of all {len(probs)}: accuracy {mean_acc:.4f}, log-loss {mean_nll:.4f}; greedy selection "
        f"(on log-loss): accuracy {sel_acc:.4f}, log-loss {sel_nll:.4f} with weights "
        + ", ".join(f"{cfg.checkpoints[i]} {weights[i]:.3f}" for i in chosen))
    record = {"method": f"greedy ensemble selection with replacement (Caruana et al. 2004) on {CRITERION}",
              "rounds": cfg.rounds, "max_members": cfg.max_members or None,
              "validation_split": run_relative(split_file), "n_val": int(len(y)),
              "tta": "flip" if cfg.tta else None,
              "candidates": [{"checkpoint": run_relative(p), "val_accuracy": acc, "val_nll": nll, "weight": float(w),
                              **{k: files[p][k] for k in ("sha256", "weights", "epochs", "command", "recovered_from")
                                 if k in files[p]}}
                             for p, (acc, nll), w in zip(cfg.checkpoints, scores, weights)],
              "val_accuracy_equal_mean": mean_acc, "val_nll_equal_mean": mean_nll,
              "val_accuracy_selected": sel_acc, "val_nll_selected": sel_nll,
              "note": "validation accuracies are optimistic: the same images chose each member's best epoch and "
                      "the weights; the test split is the unbiased score"}
    return [cfg.checkpoints[i] for i in chosen], [float(weights[i]) for i in chosen], record
