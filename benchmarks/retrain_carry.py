"""Carry a retraining campaign (benchmarks/retrain.py --carry DIR) from one machine to the next.

A campaign takes longer than a machine lives here (one session), and its work directory (gigabytes of
checkpoints) stays behind when the machine goes. `--carry DIR` keeps, in a folder meant to be committed, the
small part of the work directory that the later steps and the result are made from:

- the work directory's `campaign.json` and shared `splits.json`;
- each search folder whole (`search_state.pt`: strategy, scheduler, children, RNGs; `search_log.jsonl`, the
  latency cache, `summary.json`, `best_arch.json`, the Pareto archive), also while it runs (every
  `retrain.CARRY_EVERY_S`): a search carried mid-way resumes after its last carried job, with the time it had
  spent up to then;
- each training folder once its model is exported, without checkpoints (`*.pt`): the run's config and
  history, the ONNX models and their cards, the evaluation and speed reports.

Every file is copied atomically when it differs from the carried copy; at the start, carried files that the
work directory lacks are copied in (a file already there is never overwritten: the work directory is the
newer). A training cut off before its export is not carried and starts again from its first epoch. The work
directory must be given by the same path on the next machine: carried search summaries name their folder.
"""

from __future__ import annotations

import filecmp
import os
import shutil
import threading
from contextlib import contextmanager
from pathlib import Path
from typing import Callable, Iterator

#: Files of the work directory's top level that are carried.
TOP_LEVEL = ("campaign.json", "splits.json")
#: A training folder is carried once this file (the exported model's card) exists.
EXPORTED = "model.json"
#: Never carried: locks, half-written files, training checkpoints.
SKIPPED_SUFFIXES = (".lock", ".tmp", ".pt")


def carried_files(work: Path, only: list[Path] | None = None) -> list[Path]:
    """Paths (relative to `work`) of the files `--carry` keeps; `only`: just these job folders."""
    work = Path(work)
    if not work.is_dir():
        return []
    folders = [Path(p) for p in only] if only is not None else sorted(p for p in work.iterdir() if p.is_dir())
    files = [] if only is not None else [Path(n) for n in TOP_LEVEL if (work / n).is_file()]
    for folder in folders:
        if folder.name.startswith("search-"):
            keep = lambda f: not f.name.startswith(".") and not f.name.endswith((".lock", ".tmp"))  # noqa: E731
        elif folder.name.startswith("train-") and (folder / EXPORTED).is_file():
            keep = lambda f: not f.name.startswith(".") and not f.name.endswith(SKIPPED_SUFFIXES)  # noqa: E731
        else:
            continue
        files += sorted(f.relative_to(work) for f in folder.rglob("*") if f.is_file() and keep(f))
    return files


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
    for rel in sorted(carried_files(work, only), key=lambda rel: (rel.parent, rel.suffix != ".pt", rel.name)):
        src, dst = Path(work) / rel, Path(carry) / rel
        if dst.is_file() and filecmp.cmp(src, dst, shallow=False):
            continue
        _copy(src, dst)
        changed += 1
    return changed


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


class Carrier:
    """`save` from several threads (one at a time), logging what changed, and `every` to save while steps run;
    with `carry` None both do nothing (a campaign without --carry)."""

    def __init__(self, work: Path, carry: Path | None, log: Callable[[str], None] = print):
        self.work, self.carry, self.log = Path(work), carry and Path(carry), log
        self._lock = threading.Lock()

    def save(self, only: list[Path] | None = None) -> None:
        if self.carry is None:
            return
        with self._lock:
            changed = save(self.work, self.carry, only)
        if changed:
            self.log(f"carried {changed} changed files into {self.carry}")

    @contextmanager
    def every(self, seconds: float) -> Iterator[None]:
        """`save()` every `seconds` in a daemon thread while the block runs (a search of an hour is carried
        while it runs, not only when it ends); a failed copy is logged and the copies go on."""
        stop = threading.Event()

        def loop() -> None:
            while not stop.wait(seconds):
                try:
                    self.save()
                except Exception as exc:  # noqa: BLE001  (a failed copy must not stop the campaign)
                    self.log(f"--carry: {type(exc).__name__}: {exc}")

        thread = threading.Thread(target=loop, name="carry", daemon=True)
        if self.carry is not None:
            thread.start()
        try:
            yield
        finally:
            stop.set()
            if thread.is_alive():
                thread.join()


__all__ = ["Carrier", "carried_files", "restore", "save"]
