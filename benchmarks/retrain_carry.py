"""Carry a retraining campaign (benchmarks/retrain.py --carry DIR) from one machine to the next.

A campaign takes longer than a machine lives here (one session), and its work directory (gigabytes of
checkpoints) stays behind when the machine goes. `--carry DIR` keeps, in a folder meant to be committed, the
small part of the work directory that the later steps and the result are made from:

- the work directory's `campaign.json` and shared `splits.json`;
- each search folder whole (`search_state.pt`: strategy, scheduler, children, RNGs; `search_log.jsonl`, the
  latency cache, `summary.json`, `best_arch.json`, the Pareto archive), also while it runs (every
  `retrain.CARRY_EVERY_S`): a search carried mid-way resumes after its last carried job, with the time it had
  spent up to then;
- each training folder once its model is exported, `TRAIN_FILES` only (no checkpoints): the run's config,
  history and curves, the ONNX models and their cards, the evaluation and speed reports;
- a training folder before its export, from its first finished epoch (also while it runs), `RUNNING_FILES`:
  its history, config and checkpoints (`RUNNING_FILES`, in that order): a training cut off resumes on the next
  machine after its last carried epoch (`nasfer train` continues from last.pt). Once the model is exported
  the carried checkpoints are removed from the folder;
- with `retrain.py --keep-weights`, each exported training's `weights.pt` (its best.pt without optimizer
  state: `keep_weights`), for models used again later, e.g. members an ensemble is chosen from.

Every file is copied atomically when it differs from the carried copy; at the start, carried files that the
work directory lacks are copied in (a file already there is never overwritten: the work directory is the
newer), once the carried `campaign.json` is known to hold this campaign's settings. A training cut off before
its first epoch starts again. `--work-dir`, `--data` and a search's `--calibration` must be the same
paths on the next machine (all are settings). Commit the folder with the campaign stopped: copies made while
it runs may be up to `CARRY_EVERY_S` old, and git may read a search's log and state at different moments.
"""

from __future__ import annotations

import filecmp
import fnmatch
import json
import os
import shutil
import threading
from contextlib import contextmanager
from pathlib import Path
from typing import Callable, Iterator

#: The campaign's command and settings (benchmarks/retrain_jobs.CAMPAIGN_FILE).
CAMPAIGN = "campaign.json"
#: Files of the work directory's top level that are carried.
TOP_LEVEL = (CAMPAIGN, "splits.json")
#: A training folder is carried once this file (the exported model's card) exists.
EXPORTED = "model.json"
#: A training's selected weights, written with `retrain.py --keep-weights` (`keep_weights`), or, where its
#: best.pt was not on the machine, the note saying so.
WEIGHTS, NO_WEIGHTS = "weights.pt", "weights-missing.json"
#: What is carried of a training folder: what later steps and the report read (benchmarks/retrain_report.py),
#: the training curves and kept weights; not checkpoints or test.json's predictions, nor its copy of the
#: shared split unless it kept its weights (`nasfer ensemble --select greedy` checks a member's splits.json
#: beside it; git stores the identical copies once).
TRAIN_FILES = ("config.json", "history.json", "curves.png", "model.json", "model.onnx", "model-int8.json",
               "model-int8.onnx", "int8-refused.json", "eval-*.json", "speed-*.json", WEIGHTS, NO_WEIGHTS)

#: What is carried of a training folder that has not exported its model yet, once it has a checkpoint, in
#: the order copied: an epoch that ends between two copies leaves the history no newer than last.pt (so a
#: finished-looking history never hides an untrained last epoch) and best.pt no older than last.pt's best
#: (the resumed run retrains the epochs after last.pt, which makes the same best.pt again).
RUNNING_FILES = ("history.json", "config.json", "last.pt", "best.pt")
CHECKPOINT = "last.pt"


def _search_file(path: Path) -> bool:  # all but locks and half-written files (quantize's NAME.tmp.onnx too)
    return not path.name.startswith(".") and not path.name.endswith(".lock") and ".tmp" not in path.name


def _train_file(path: Path) -> bool:
    return any(fnmatch.fnmatchcase(path.name, pattern) for pattern in TRAIN_FILES) or (
        path.name == "splits.json" and (path.parent / WEIGHTS).is_file())


def _copy_order(rel: Path) -> tuple:
    """A search's state (`*.pt`) before its log; a running training's files in RUNNING_FILES order."""
    if rel.parent.name.startswith("train-") and rel.name in RUNNING_FILES:
        return (str(rel.parent), 0, RUNNING_FILES.index(rel.name), rel.name)
    return (str(rel.parent), 1 if rel.suffix == ".pt" else 2, 0, rel.name)


def _running_file(path: Path) -> bool:
    return path.parent.name.startswith("train-") and path.name in RUNNING_FILES


def carried_files(work: Path, only: list[Path] | None = None) -> list[Path]:
    """Paths (relative to `work`) of the files `--carry` keeps; `only`: just these job folders."""
    work = Path(work)
    if not work.is_dir():
        return []
    folders = [Path(p) for p in only] if only is not None else sorted(p for p in work.iterdir() if p.is_dir())
    files = [] if only is not None else [Path(n) for n in TOP_LEVEL if (work / n).is_file()]
    for folder in folders:
        if folder.name.startswith("search-"):
            keep = _search_file
        elif folder.name.startswith("train-") and (folder / EXPORTED).is_file():
            keep = _train_file
        elif folder.name.startswith("train-") and (folder / CHECKPOINT).is_file():
            keep = _running_file
        else:
            continue
        files += sorted(f.relative_to(work) for f in folder.rglob("*") if f.is_file() and keep(f))
    return files


def check_folder(carry: Path) -> None:
    """ValueError unless `carry` is (or can be made) a folder this process can write in."""
    carry = Path(carry)
    if carry.exists() and not carry.is_dir():
        raise ValueError(f"--carry {carry}: is not a folder")
    try:
        carry.mkdir(parents=True, exist_ok=True)
        probe = carry / f".probe.{os.getpid()}.tmp"
        probe.write_bytes(b"")
        probe.unlink()
    except OSError as exc:
        raise ValueError(f"--carry {carry}: cannot write there ({exc.strerror or exc})") from None


def _copy(src: Path, dst: Path) -> None:
    """Copy atomically (a kill never leaves half a file at `dst`), keeping the modification time."""
    dst.parent.mkdir(parents=True, exist_ok=True)
    tmp = dst.with_name(f".{dst.name}.{os.getpid()}-{threading.get_ident()}.tmp")
    shutil.copy2(src, tmp)
    os.replace(tmp, dst)


def save(work: Path, carry: Path, only: list[Path] | None = None) -> int:
    """Copy the carried files of `work` (or of the job folders `only`) that differ into `carry`; the count.

    A running search may write while it is copied: its state (`*.pt`) is copied before its log, so the log
    holds at least the jobs the state counts, and a resumed search cuts it back to them.
    """
    changed = 0
    for rel in sorted(carried_files(work, only), key=_copy_order):
        src, dst = Path(work) / rel, Path(carry) / rel
        if dst.is_file() and filecmp.cmp(src, dst, shallow=False):
            continue
        _copy(src, dst)
        changed += 1
    return changed + prune(work, carry, only)


def prune(work: Path, carry: Path, only: list[Path] | None = None) -> int:
    """Remove from `carry` the checkpoints of trainings whose model `work` has exported (`RUNNING_FILES`
    outside `TRAIN_FILES`: carried while the training ran, no longer needed); the count."""
    work, carry = Path(work), Path(carry)
    folders = [Path(p).name for p in only] if only is not None else [p.name for p in work.glob("train-*")]
    removed = 0
    for name in folders:
        if not (work / name / EXPORTED).is_file():
            continue
        for extra in (carry / name / n for n in RUNNING_FILES if not _train_file(Path(n))):
            if extra.is_file():
                extra.unlink()
                removed += 1
    return removed


def keep_weights(run_dir: Path, log: Callable[[str], None]) -> None:
    """Write `run_dir/weights.pt`, atomically: its best.pt without what only resuming reads (optimizer and
    scheduler state and the weight EMA's running copy: `nasfer.checkpoint.strip_training_state`), which best.pt
    of runs before 2026-12-04 kept (today's best.pt is the same); enough to evaluate, export, fine-tune
    or join an ensemble (`nasfer ensemble --checkpoints`, with the run's splits.json, carried beside it). Carried
    as a `TRAIN_FILES` file, it outlives the checkpoints, which leave the carry folder once the model is
    exported. A run whose best.pt is not on this machine (exported on another one before `--keep-weights` was
    given) gets `weights-missing.json` saying so instead, logged."""
    from nasfer.checkpoint import load_checkpoint, save_checkpoint, strip_training_state

    run_dir = Path(run_dir)
    best = run_dir / "best.pt"
    if not best.is_file():
        why = f"{best} was not on the machine that ran this step: the run's checkpoints went with another machine"
        (run_dir / NO_WEIGHTS).write_text(json.dumps({"missing": why}, indent=1) + "\n")
        log(f"  {why}; {run_dir.name} keeps no {WEIGHTS}")
        return
    save_checkpoint(run_dir / WEIGHTS, strip_training_state(load_checkpoint(best)))  # best.pt of older runs kept it


def weights_kept(run_dir: Path) -> bool:
    """Whether `keep_weights` ran for `run_dir` (its weights.pt, or the note that they were not there)."""
    return (Path(run_dir) / WEIGHTS).is_file() or (Path(run_dir) / NO_WEIGHTS).is_file()


def restore(carry: Path, work: Path) -> list[Path]:
    """Copy the files of `carry` that `work` lacks into it; their relative paths."""
    carry, work = Path(carry), Path(work)
    if not carry.is_dir():
        return []
    restored = []
    for src in sorted(p for p in carry.rglob("*") if p.is_file() and not p.name.startswith(".")):
        rel = src.relative_to(carry)
        if not (work / rel).exists():
            _copy(src, work / rel)
            restored.append(rel)
    return restored


def restore_campaign(campaign, folder: Path, log: Callable[[str], None] = print) -> None:
    """Copy the carried files that `campaign`'s work directory lacks into it, once `folder` (checked by
    `check_folder`) is known to be this campaign's (`campaign.check_settings(folder)`: SystemExit naming each
    difference)."""
    campaign.check_settings(folder, fix=f"or give another --carry folder ({folder} is another campaign's)")
    restored = restore(folder, campaign.work)
    if restored:
        log(f"restored {len(restored)} files from --carry {folder} into {campaign.work}")
    elif not (folder / CAMPAIGN).is_file():
        log(f"--carry {folder}: nothing carried yet (a new campaign)")


class Carrier:
    """`save` from several threads (one at a time), logging what changed, and `every` to save while steps run;
    with `carry` None both do nothing (a campaign without --carry)."""

    def __init__(self, work: Path, carry: Path | None, log: Callable[[str], None] = print):
        self.work, self.carry, self.log = Path(work), carry and Path(carry), log
        self._lock = threading.Lock()

    def save(self, only: list[Path] | None = None) -> None:
        """`save` into the carry folder; an OSError (a full disk) is logged, never raised: the campaign goes on
        and a stopped one still says how to continue."""
        if self.carry is None:
            return
        try:
            with self._lock:
                changed = save(self.work, self.carry, only)
        except OSError as exc:
            self.log(f"--carry {self.carry}: not updated: {type(exc).__name__}: {exc}")
            return
        if changed:
            self.log(f"carried {changed} changed files into {self.carry}")

    @contextmanager
    def every(self, seconds: float) -> Iterator[None]:
        """`save()` every `seconds` in a daemon thread while the block runs (a search of an hour is carried
        while it runs, not only when it ends)."""
        stop = threading.Event()

        def loop() -> None:
            while not stop.wait(seconds):
                self.save()

        thread = threading.Thread(target=loop, name="carry", daemon=True)
        if self.carry is not None:
            thread.start()
        try:
            yield
        finally:
            stop.set()
            if thread.is_alive():
                thread.join()


__all__ = ["Carrier", "carried_files", "check_folder", "keep_weights", "prune", "restore", "restore_campaign", "save",
           "weights_kept"]
