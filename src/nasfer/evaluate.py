"""Score a model (.onnx through the engine, .pt through torch, or the shipped default) on a labelled dataset.

The report is the JSON of DESIGN.md's `nasfer evaluate` contract: the metric fields of
`nasfer.metrics.classification_report` plus where the numbers came from (dataset, split, model,
contempt policy, skipped files, notes) and how fast they came.

Dataset labels are matched to the model's labels by name, not by index, so a model trained on a
custom label set is scored correctly or refused with a message saying which labels it lacks.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Callable, Literal, Optional, Sequence

import numpy as np

from .config import option
from .errors import DataError, ModelError
from .eval_report import format_summary, require_matplotlib, to_json, write_plots
from .labels import label_index_map, normalize_name, reading_label_set
from .preprocessing import Preprocessing
from .record import check_recordable, command_line, record_metrics
from .tta import builtin_tta, predict_batches, tta_plan  # noqa: F401  (predict_batches: public here too)

#: How many skip reasons the report lists (the count is always complete).
SKIPPED_EXAMPLES = 20


@dataclass
class EvalConfig:
    """Everything `nasfer evaluate` needs; one field per flag."""

    data: str = option("", "dataset: fer2013.csv, a Kaggle/CK+ zip or folder, or any [<split>/]<class>/<image> tree")
    dataset: Literal["auto", "fer2013", "fer2013-csv", "ckplus", "folder"] = option("auto", "dataset format")
    split: Optional[str] = option(
        None, "split to score: Training, PublicTest, PrivateTest (any case), a folder split such as test, or all "
              "(default: PublicTest if present, else test, else all)")
    split_file: Optional[str] = option(
        None, "a training run's splits.json: its roles (train, val, test, ...) replace the dataset's splits, so "
              "`--split val` scores exactly the validation images that run held out (model selection)")
    model: Optional[str] = option(None, "model to score: FILE.onnx (with its model card) or a training checkpoint "
                                        "FILE.pt, or a shipped model by name (default, fast) (default: default)")
    contempt: Literal["exclude", "neutral"] = option("exclude", "what CK+ 'contempt' images become: left out, or "
                                                                 "scored as neutral (the original design)")
    json: Optional[str] = option(None, "write the JSON report to FILE ('-': stdout, instead of the summary table)")
    plots: Optional[str] = option(None, "write confusion.png, roc.png and reliability.png into this folder")
    tta: bool = option(False, "flip test-time augmentation: average the probabilities with the mirrored image's "
                              "(refused for a model whose card says its graph already does TTA)")
    ten_crop: bool = option(False, "ten-crop test-time augmentation: mean over 4 corner and the centre views "
                                   "(shifted 4 px, edges repeated, as in training) and their mirror images")
    record: bool = option(False, "store this score in the .onnx model's card under the split's name, with the "
                                 "date and command (a released model's PublicTest score is recorded once)")
    overwrite_record: bool = option(False, "with --record: replace a score the card already holds for this split")
    batch_size: int = option(256, "images per inference batch")
    strict: bool = option(False, "fail on the first unreadable row or image instead of skipping and counting it")
    threads: int = option(0, "CPU threads for inference (0: the runtime's default)")
    detect_faces: Optional[bool] = option(None, "crop the face out of every image with the Haar detector before "
                                                "scoring, as `nasfer train --detect-faces` (default: as the model's "
                                                "training run did)")

    def validate(self) -> "EvalConfig":
        """Raise ValueError naming the first impossible setting; return self."""
        from .validation import check, threads_check

        check([(self.batch_size >= 1, f"--batch-size must be at least 1, got {self.batch_size}"),
               threads_check(self.threads, zero="the runtime's default")])
        return self


@dataclass(frozen=True)
class LoadedModel:
    """What evaluation needs of a model, whichever runtime serves it."""

    path: str
    name: str
    format: Literal["onnx", "checkpoint"]
    labels: tuple[str, ...]
    preprocessing: Preprocessing
    predict: Callable[[np.ndarray], np.ndarray]  # uint8 (N,S,S) -> probs (N,K)
    builtin_tta: Optional[str] = None  # TTA inside an exported graph: None, "flip" or "ten-crop"
    training: dict[str, Any] = field(default_factory=dict)  # its training run's config ({"train", "data"}), if known


# ---------------------------------------------------------------------------- model


def load_model(model: str | None, threads: int = 0) -> LoadedModel:
    """An .onnx model through `nasfer.runtime.engine` or a .pt checkpoint through torch, behind one `predict`."""
    from .weights import resolve_model

    path = resolve_model(model)
    suffix = path.suffix.lower()
    if suffix == ".onnx":
        return _load_onnx(path, threads)
    if suffix in (".pt", ".pth"):
        return _load_checkpoint(path, threads)
    raise ModelError(f"{path}: unknown model type {suffix or '(no suffix)'!r}; expected FILE.onnx or a checkpoint FILE.pt")


def _load_onnx(path: Path, threads: int) -> LoadedModel:
    try:
        from .runtime.engine import Classifier
    except ImportError as exc:
        raise ModelError(f"{path}: ONNX models need nasfer.runtime.engine and onnxruntime ({exc})") from None
    clf = Classifier(path, threads=threads or None)
    card = getattr(clf, "card", None) or {}
    prep = clf.preprocessing
    if not isinstance(prep, Preprocessing):
        prep = Preprocessing.from_dict(dict(prep))
    return LoadedModel(path=str(path), name=str(card.get("name") or path.stem), format="onnx",
                       labels=tuple(clf.labels), preprocessing=prep, predict=clf.predict,
                       builtin_tta=builtin_tta(card), training=dict((card.get("training") or {}).get("config") or {}))


def _load_checkpoint(path: Path, threads: int) -> LoadedModel:
    try:
        import torch
    except ImportError:
        raise ModelError(f"{path}: checkpoints need torch (pip install 'nasfer[train]'); or evaluate the exported "
                         ".onnx") from None
    from .checkpoint import load_model as load_torch_model
    from .checkpoint import preprocessing_of
    from .preprocessing import normalize_tensor

    if threads:
        torch.set_num_threads(threads)
    net, ckpt = load_torch_model(path)
    prep = preprocessing_of(ckpt)

    def predict(images: np.ndarray) -> np.ndarray:
        with torch.no_grad():
            x = normalize_tensor(torch.from_numpy(np.ascontiguousarray(images)), prep)
            return torch.softmax(net(x).float(), dim=1).numpy()

    return LoadedModel(path=str(path), name=str(ckpt["model"]["name"]), format="checkpoint",
                       labels=tuple(ckpt["labels"]), preprocessing=prep, predict=predict,
                       training=dict(ckpt.get("config") or {}))


# ---------------------------------------------------------------------------- labels and splits


def default_split(split_names: Sequence[str]) -> str:
    """PublicTest where the official splits exist, else a test folder, else everything."""
    lowered = {s.lower(): s for s in split_names}
    for candidate in ("publictest", "test", "testing"):
        if candidate in lowered:
            return lowered[candidate]
    return "all"


def map_labels(dataset_labels: Sequence[str], labels: np.ndarray, model: LoadedModel, contempt: str, *,
               canonical: bool, dataset_notes: Sequence[str] = ()) -> tuple[np.ndarray, str | None, list[str]]:
    """(dataset label -> model label index or -1 for excluded, contempt policy applied or None, notes).

    Read canonically, the reader has already applied the contempt policy (and said so in its notes);
    read by folder names (a model with its own label set), contempt is decided here: the model's own
    'contempt' class if it has one, else the policy. Any other label with images the model cannot
    name is an error: scoring it would be silently wrong.
    """
    index = label_index_map(dataset_labels, model.labels)
    keys = [normalize_name(n) for n in dataset_labels]
    counts = np.bincount(np.asarray(labels, dtype=np.int64), minlength=len(dataset_labels))
    notes: list[str] = []
    state: str | None = None
    if canonical:
        state = contempt if any("contempt" in note.lower() for note in dataset_notes) else None
    elif "contempt" in keys:
        c = keys.index("contempt")
        if index[c] >= 0:
            state = "model"
            notes.append("'contempt' scored as the model's own 'contempt' class (--contempt does not apply)")
        elif contempt == "neutral":
            index[c] = label_index_map(["neutral"], model.labels)[0]
            state = "neutral"
            notes.append("CK+ 'contempt' mapped to 'neutral' (--contempt neutral), as the original design did")
        else:
            state = "exclude"
            if counts[c]:
                notes.append(f"{counts[c]} 'contempt' images excluded: the model has no such label "
                             "(--contempt neutral maps contempt to neutral)")
    lacking = [f"'{dataset_labels[i]}' ({counts[i]} images)" for i in range(len(dataset_labels))
               if counts[i] and index[i] < 0 and not (keys[i] == "contempt" and state == "exclude")]
    if lacking:
        raise ModelError(f"model {model.name!r} ({model.path}) has no label for {', '.join(lacking)}; "
                         f"its labels are: {', '.join(model.labels)}")
    return index, state, notes


# ---------------------------------------------------------------------------- the evaluation


@dataclass
class SplitPrediction:
    """A model's probabilities on one split of a dataset: probs float64 (N, K) in the model's label order,
    y_true int (N,) the true labels as indices into `model.labels`; `part` the images scored."""

    model: LoadedModel
    dataset: Any
    part: Any
    split: str
    kind: str
    data_path: Path
    y_true: np.ndarray
    probs: np.ndarray
    notes: list[str]
    contempt: Any
    seconds: float
    read_seconds: float


def seen_in_training(model: LoadedModel, part, data_path: Path, split: str) -> list[str]:
    """A note when the images about to be scored include some the model was trained or selected on.

    Checked when the model's training run (card or checkpoint config; an ensemble's member runs) read a dataset
    of the same file name: by that run's splits.json (beside a checkpoint, or in the run folder its config
    names), else, for the whole dataset (split 'all'), by the name alone. [] when there is nothing to say.
    """
    from .checkpoint import run_configs

    runs = [run for run in run_configs(model.training) if isinstance(run.get("data"), dict) and run["data"].get("data")
            and Path(str(run["data"]["data"])).name == data_path.name]
    if not runs:
        return []
    found: list[Path] = []
    for run in runs:
        candidates = [Path(model.path).parent / "splits.json"] if model.format == "checkpoint" else []
        out = (run.get("train") or {}).get("out")
        if out:
            candidates.append(Path(str(out)).expanduser() / "splits.json")
        hit = next((c for c in candidates if c.is_file()), None)
        if hit is None and split == "all":
            return [f"the model was trained on {data_path.name} and its run's splits.json was not found, so these "
                    "images may include its training images; pass it (--split-file RUN/splits.json --split test) to "
                    "score only the images it held out"]
        if hit is not None and hit not in found:
            found.append(hit)
    if not found:
        return []
    from .data.splits import read_split_file, sample_keys

    keys = sample_keys(part.sources, str(data_path)).tolist()
    role_maps = [read_split_file(f) for f in found]
    used = sum(1 for k in keys if any(roles.get(k) in ("train", "val") for roles in role_maps))
    if not used:
        return []
    where = ", ".join(str(f) for f in found)
    return [f"{used} of these {len(part)} images trained or selected this model ({where}): the score is optimistic; "
            f"--split-file {found[0]} --split test scores only the images it held out"]


def predict_split(cfg: EvalConfig, *, progress: bool = False) -> SplitPrediction:
    """Read the dataset, cut the split (`cfg.split`, with `cfg.split_file`'s roles if given), predict.

    Errors: ValueError (an impossible setting), DataError (dataset, empty split), ModelError (model, TTA the
    graph already does).
    """
    from .data import detect_kind
    from .data.facecrop import read_images, trained_on_face_crops

    cfg.validate()
    if not cfg.data:
        raise DataError("--data is required (a dataset zip, folder or fer2013.csv)")
    model = load_model(cfg.model, cfg.threads)  # before the dataset: a bad --model fails in a second
    tta_kind, tta_notes = tta_plan(model, cfg.tta, cfg.ten_crop)
    if cfg.record:
        check_recordable(model.path, cfg.split, cfg.overwrite_record, extra_tta=cfg.tta or cfg.ten_crop,
                         dataset=cfg.data)

    started = time.perf_counter()
    data_path = Path(cfg.data).expanduser()
    if not data_path.exists():
        raise DataError(f"{data_path}: dataset not found")
    kind = detect_kind(data_path) if cfg.dataset == "auto" else cfg.dataset
    label_set = reading_label_set(model.labels, kind)
    crops = cfg.detect_faces  # by default as the model trained (before: whole photos, for a model of face crops)
    if crops is None:
        crops = trained_on_face_crops(model.training, kind)
    dataset = read_images(data_path, kind, face_crops=crops, contempt=cfg.contempt, strict=cfg.strict,
                          label_set=label_set, size=model.preprocessing.size)
    if cfg.split_file:
        from .data.splits import apply_split_file, read_split_file, sample_keys

        roles = apply_split_file(read_split_file(cfg.split_file), sample_keys(dataset.sources, str(data_path)),
                                 where=cfg.split_file)
        dataset = replace(dataset, splits=roles)
    try:
        part = dataset.select_split(cfg.split or default_split(dataset.split_names()))
    except ValueError as exc:
        if cfg.split_file or (cfg.split or "").lower() not in ("train", "val", "test"):
            raise
        raise ValueError(f"{exc}; a training run's {cfg.split} images: add --split-file RUN/splits.json") from None
    split = "+".join(sorted(set(part.splits.astype(str).tolist())))  # the split's own name(s), e.g. PublicTest
    if cfg.record:  # again with the names the request turned out to cover ('test', 'publictest', 'all', ...)
        check_recordable(model.path, split, cfg.overwrite_record, dataset=str(data_path))
    seen = seen_in_training(model, part, data_path, split)
    if cfg.record and seen:  # a test score on images the model may have trained on is no test score
        raise ModelError(f"--record stores a test score, and {seen[0]}")
    notes = list(dataset.notes) + seen

    index, contempt_state, mapping_notes = map_labels(part.label_names, part.labels, model, cfg.contempt,
                                                      canonical=label_set == "canonical", dataset_notes=dataset.notes)
    notes.extend(mapping_notes + tta_notes)
    keep = index[part.labels] >= 0
    part = part.subset(keep)
    if not len(part):
        raise DataError(f"{data_path}: no images to evaluate in split {split!r}")
    y_true = index[part.labels]
    read_seconds = time.perf_counter() - started

    started = time.perf_counter()
    probs = predict_batches(model.predict, part.images, cfg.batch_size, tta_kind, progress)
    seconds = time.perf_counter() - started
    if probs.shape != (len(part), len(model.labels)):
        raise ModelError(f"{model.path}: predicted shape {probs.shape}, expected ({len(part)}, {len(model.labels)})")
    return SplitPrediction(model, dataset, part, split, kind, data_path, y_true, probs, notes, contempt_state,
                           seconds, read_seconds)


def evaluate(cfg: EvalConfig, *, progress: bool = False, log: Callable[[str], None] = lambda msg: None,
             command: str | None = None) -> dict[str, Any]:
    """Read, predict, score; write --json FILE (not '-') and --plots; with --record store the score in the
    model's card (`command`: the command line recorded with it, default: rebuilt from `cfg`); return the report.

    Errors: DataError (dataset), ModelError (model, TTA the graph already does, a score already recorded).
    """
    from .metrics import classification_report

    if cfg.plots:
        require_matplotlib()  # fail before the work, not after it
    pred = predict_split(cfg, progress=progress)
    model, dataset, part, split, y_true, probs = pred.model, pred.dataset, pred.part, pred.split, pred.y_true, pred.probs
    data_path, kind, notes, contempt_state = pred.data_path, pred.kind, pred.notes, pred.contempt
    seconds, read_seconds = pred.seconds, pred.read_seconds
    report: dict[str, Any] = classification_report(y_true, probs, model.labels)
    report.update({
        "skipped": len(dataset.skipped),
        "skipped_examples": [str(s) for s in dataset.skipped[:SKIPPED_EXAMPLES]],
        "dataset": {"path": str(data_path), "format": kind, "splits": dataset.split_names()},
        "split": split,
        **({"split_requested": cfg.split} if cfg.split and cfg.split != split else {}),
        "model": {"path": model.path, "name": model.name, "format": model.format},
        "contempt": contempt_state,
        "notes": notes,
        "tta": bool(cfg.tta),
        "ten_crop": bool(cfg.ten_crop),
        "builtin_tta": model.builtin_tta,
        "seconds": round(seconds, 4),
        "images_per_second": round(len(part) / seconds, 1) if seconds > 0 else 0.0,
        "read_seconds": round(read_seconds, 4),
    })
    if cfg.record:  # first: a once-only test score must not be lost to a failing --json or --plots
        card = record_metrics(model.path, report, command or command_line("evaluate", cfg), cfg.overwrite_record)
        log(f"{split} score recorded in {card}")
    try:
        if cfg.plots:
            report["plots"] = {k: str(v) for k, v in write_plots(y_true, probs, report, cfg.plots).items()}
        if cfg.json and cfg.json != "-":
            path = Path(cfg.json)
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(to_json({**report, "command": command or command_line("evaluate", cfg)}) + "\n")
            log(f"report written to {path}")
    except OSError as exc:
        raise DataError(f"cannot write the report ({exc.strerror or exc}: {exc.filename or cfg.json})"
                        + ("; the score is recorded in the card" if cfg.record else "")) from None
    return report


__all__ = ["EvalConfig", "LoadedModel", "evaluate", "load_model", "map_labels", "default_split", "predict_batches",
           "write_plots", "to_json", "format_summary"]
