"""Recording a released model's test score in its model card, once, with the date and the command.

The project's protocol: models are selected on the validation split carved out of Training; a final
test score (FER2013 PublicTest) is measured once per released model and stored in its card. This module
makes that mechanical: `nasfer evaluate --split PublicTest --record` writes the report into the card
under the split's name with `recorded: {date, command}`, and refuses when the card already holds a
score for that split unless `--overwrite-record` says so (the old record is then kept under
`previous_records` so the history stays visible).
"""

from __future__ import annotations

import dataclasses
import os
import shlex
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Iterable

from .errors import ModelError


def command_line(command: str, *configs: Any, positional: Iterable[str] = ()) -> str:
    """`nasfer COMMAND` with the flags of dataclass configs that differ from their defaults.

    Flags follow `nasfer.config.add_arguments`: `--field-name VALUE`, `--x`/`--no-x` for booleans, lists
    as several values. Values are shell-quoted, so the line can be pasted back into a shell.
    """
    from .config import to_flags

    parts = ["nasfer", command, *positional]
    for cfg in configs:
        parts += to_flags({f.name: getattr(cfg, f.name) for f in dataclasses.fields(cfg)}, type(cfg))
    return shlex.join(parts)


def _card_of(model_path: str | os.PathLike) -> tuple[Path, dict[str, Any]]:
    from .runtime.engine import card_path, read_card

    path = Path(model_path)
    if path.suffix.lower() != ".onnx":
        raise ModelError(f"{path}: --record stores the score in an exported model's card; export the "
                         "checkpoint first (nasfer export) and evaluate the .onnx")
    return card_path(path), read_card(path)


def check_recordable(model_path: str | os.PathLike, split: str | None, overwrite: bool = False,
                     extra_tta: bool = False, dataset: str | None = None) -> list[str]:
    """ModelError unless a score for `split` may be recorded in the card of `model_path` (.onnx); the keys of
    the card's metrics the record replaces (only with `overwrite`: `conflicting_splits`).

    Called before the evaluation so a refused record costs nothing. `extra_tta`: the evaluation adds TTA
    the graph does not do, so its score is not the released model's own.
    """
    if not split:
        raise ModelError("--record needs an explicit --split (e.g. --split PublicTest)")
    if extra_tta:
        raise ModelError("--record stores the released model's own score: leave out --tta/--ten-crop (build TTA "
                         "into the graph with `nasfer export --tta` or `--ten-crop` instead)")
    path, card = _card_of(model_path)
    replaced = conflicting_splits(card, split, dataset=dataset)
    if replaced and not overwrite:
        key = replaced[0]
        existing = card["metrics"][key]
        when = (existing.get("recorded") or {}).get("date", "an earlier run")
        accuracy = existing.get("accuracy", float("nan"))
        raise ModelError(f"{path} already records a {key} score (accuracy {accuracy:.4f}, {when}) and --split "
                         f"{split} scores those images again; a released model is scored on them once. Pass "
                         "--overwrite-record to replace it (the old score is kept under previous_records)")
    return replaced


def conflicting_splits(card: dict[str, Any], split: str, *, dataset: str | None = None) -> list[str]:
    """Keys of the card's metrics whose images `split` of `dataset` (a file or folder; None: unknown) may
    score again: the same split by another spelling or alias, 'test' for PublicTest, 'all' for anything, a
    '+'-joined part, on the same dataset (by file name; an entry or a request that does not name its
    dataset counts as the same)."""
    from .data.dataset import split_matches

    wanted, name = split_matches(split), Path(dataset).name if dataset else None
    keys = []
    for key, entry in (card.get("metrics") or {}).items():
        scored_on = ((entry.get("dataset") or {}).get("path") if isinstance(entry, dict) else None)
        if name and scored_on and Path(str(scored_on)).name != name:
            continue  # another dataset's images (e.g. a CK+ cross-check beside the FER2013 test score)
        have = split_matches(str(key))
        if wanted is None or have is None or wanted & have:
            keys.append(str(key))
    return keys


def check_replaceable(out: str | os.PathLike) -> None:
    """ModelError when the card beside `out` (.onnx) records a test score: a new model written there would
    drop the record and allow the test split to be scored again; or when that .json file is there and is no
    model card (a run's config.json, test.json, history.json; an evaluate report), which the card would replace
    (before: it did, silently). Checked before any work."""
    import json

    from .runtime.engine import CARD_FORMAT, card_path

    path = card_path(Path(out))
    if not path.exists():
        return
    try:
        card = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError):
        card = None
    if not (isinstance(card, dict) and str(card.get("format", "")).split("/")[0] == CARD_FORMAT.split("/")[0]):
        raise ModelError(f"{out}: its model card would be written to {path}, which is there and is not a model card "
                         "(a run's config.json or test.json? a report?); nothing was written: choose another --out "
                         "name")
    recorded = [key for key, entry in ((card.get("metrics") or {}) if isinstance(card, dict) else {}).items()
                if isinstance(entry, dict) and entry.get("recorded")]
    if recorded:
        raise ModelError(f"{out}: its card records a {', '.join(recorded)} score of the released model; writing a "
                         "new model over it would lose that record. Write to another --out (or move the old model "
                         "and its card away first)")


def record_metrics(model_path: str | os.PathLike, report: dict[str, Any], command: str,
                   overwrite: bool = False) -> Path:
    """Store `report` (a `nasfer evaluate` report) in the card under report['split']; return the card's path.

    Adds `recorded: {date (UTC, ISO 8601), command}`. ModelError as `check_recordable`.
    """
    from .card import write_card

    split = str(report["split"])
    dataset = (report.get("dataset") or {}).get("path")
    replaced = check_recordable(model_path, split, overwrite, dataset=dataset)
    path, card = _card_of(model_path)
    metrics = dict(card.get("metrics") or {})
    entry = {**report, "recorded": {"date": datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ"),
                                    "command": command}}
    entry["model"] = {**report.get("model", {}), "path": Path(model_path).name}  # the file beside the card
    if replaced:
        previous = list(card.get("previous_records") or [])
        for old_key in replaced:
            old = metrics.pop(old_key)
            previous.append({"split": old_key, "accuracy": old.get("accuracy"), "macro_f1": old.get("macro_f1"),
                             "recorded": old.get("recorded")})
        card["previous_records"] = previous
    metrics[split] = entry
    card["metrics"] = metrics
    write_card(path, card)
    return path


__all__ = ["command_line", "check_recordable", "check_replaceable", "conflicting_splits", "record_metrics"]
