"""Subject-independent k-fold cross-validation (the CK+ protocol), training each fold with the Trainer.

One person never appears on both sides of a fold: samples are grouped by the subject id in their file
names (`S005_001_00000011.png` -> `S005`, `--group-regex`), folds are made of whole subjects
(`nasfer.data.splits.group_kfold`, class shares kept close), and inside each fold the validation
part used for model selection is carved out of the training subjects by subject as well.

Layout of `--out`:
  folds.json        which subjects and images are in which fold
  fold-01/ ...      one ordinary training run per fold (best.pt, history.json, splits.json, test.json);
                    an interrupted crossval resumes: finished folds are only re-scored
  crossval.json     per-fold and mean/std accuracy and macro-F1, pooled report and confusion over all folds
  confusion.png     the pooled confusion matrix (when nasfer.plots can draw one)
"""

from __future__ import annotations

import dataclasses
import json
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

import numpy as np

from .config import DataConfig, TrainConfig, apply_preset, option, to_dict
from .data import FaceDataset, stratified_split
from .data.splits import CKPLUS_SUBJECT_REGEX, TEST, TRAIN, VAL, group_kfold, sample_keys, subject_ids, write_split_file
from .errors import ModelError
from .validation import check_new_run_folder, check_out_outside_data, check_output_folder

FORMAT = "nasfer-crossval/1"


@dataclass
class CrossvalConfig:
    """What `nasfer crossval` adds to the training flags."""

    folds: int = option(10, "number of folds; each holds out whole subjects")
    group_regex: str = option(CKPLUS_SUBJECT_REGEX, "regular expression searched in each file name; its first group "
                                                    "is the subject id (a pattern with '/' is matched on the path)")
    out: str = option("runs/crossval", "output directory: crossval.json, confusion.png, folds.json, fold-NN/ runs")

    def validate(self) -> "CrossvalConfig":
        """Raise ValueError naming an impossible setting; return self."""
        import re

        from .validation import check_output_folder

        if self.folds < 2:
            raise ValueError(f"--folds must be at least 2, got {self.folds}")
        try:
            re.compile(self.group_regex)
        except re.error as exc:
            raise ValueError(f"--group-regex {self.group_regex!r} is not a valid regular expression ({exc})") from None
        check_output_folder(self.out, "the cross-validation folder")
        return self


def validation_subjects(labels: np.ndarray, groups: np.ndarray, fraction: float, seed: int) -> np.ndarray:
    """Positions (into `labels`) of a validation part made of whole subjects, about `fraction` of them."""
    n_groups = len(np.unique(groups))
    n_parts = min(max(2, int(round(1.0 / max(fraction, 1e-6)))), n_groups)
    if n_parts < 2:  # a single subject: nothing to hold out by subject; fall back to images
        return stratified_split(labels, fraction, seed)[1]
    return group_kfold(labels, groups, n_parts, seed)[0]


def fold_roles(n: int, test_idx: np.ndarray, labels: np.ndarray, groups: np.ndarray, val_fraction: float,
               seed: int) -> np.ndarray:
    """train/val/test role of every sample for one fold (val = whole subjects from the training part)."""
    roles = np.full(n, TRAIN, dtype=object)
    roles[test_idx] = TEST
    train_idx = np.flatnonzero(roles == TRAIN)
    roles[train_idx[validation_subjects(labels[train_idx], groups[train_idx], val_fraction, seed)]] = VAL
    return roles.astype(str)


def summarize(values: list[float]) -> dict[str, Any]:
    """mean and sample standard deviation (ddof=1) over folds, plus the values themselves."""
    arr = np.asarray(values, dtype=np.float64)
    return {"mean": float(arr.mean()) if len(arr) else 0.0,
            "std": float(arr.std(ddof=1)) if len(arr) > 1 else 0.0,
            "per_fold": [float(v) for v in arr]}


def _plot_confusion(report: dict[str, Any], path: Path) -> Path:
    from .plots import plot_confusion

    return plot_confusion(np.asarray(report["confusion"]), list(report["labels"]), path)


def check_same_fold_plan(out: Path, assignment: dict[str, int]) -> None:
    """ValueError when `out` holds the folds of another plan (other --folds, --group-regex, --seed or data): its
    fold runs would resume with models trained on images the new folds test on (before: they did, silently)."""
    path = out / "folds.json"
    if not path.is_file():
        return
    try:
        saved = json.loads(path.read_text()).get("assignment")
    except (OSError, ValueError, AttributeError):
        saved = None
    if saved != assignment:
        raise ValueError(f"--out {out} holds the folds of another plan (other --folds, --group-regex, --seed or "
                         "data, see its folds.json): its fold runs would go on with models trained on images the "
                         "new folds test on; give a new --out (nothing was done)")


def run_crossval(cv: CrossvalConfig, train_cfg: TrainConfig, data_cfg: DataConfig, *,
                 dataset: FaceDataset | None = None, progress: bool = True, command: str | None = None,
                 log: Callable[[str], None] = lambda msg: print(msg, flush=True)) -> dict[str, Any]:
    """Train and test every fold; write and return the crossval report (see the module doc)."""
    from .train import load_dataset, prepare_run, score_predictions
    from .training.checks import RESUMABLE_FLAGS, RecipeChanged

    cv, train_cfg = cv.validate(), apply_preset(train_cfg).validate()
    out = Path(cv.out)
    check_out_outside_data(cv.out, data_cfg.data, "the crossval")
    if not (out / "folds.json").is_file():  # a new crossval: never into a folder of other files (before: the
        check_output_folder(cv.out, "the crossval directory")  # dataset's own folder got fold-01/curves.png)
        check_new_run_folder(cv.out, "a crossval", ("folds.json", "crossval.json", "confusion.png",
                                                    *(f"fold-{k:02d}" for k in range(1, cv.folds + 1))))
    data = dataset if dataset is not None else load_dataset(train_cfg, data_cfg)
    for note in data.notes:
        log(f"data: {note}")
    keys = sample_keys(data.sources, data_cfg.data)
    groups = subject_ids(keys, cv.group_regex)
    folds = group_kfold(data.labels, groups, cv.folds, train_cfg.seed)
    label_names = list(data.label_names)
    n_subjects = len(np.unique(groups))
    log(f"crossval: {len(data)} images of {n_subjects} subjects, {len(label_names)} labels "
        f"({', '.join(label_names)}), {cv.folds} subject-independent folds -> {out}")
    assignment = {k: int(f + 1) for f, idx in enumerate(folds) for k in keys[idx].tolist()}
    check_same_fold_plan(out, assignment)
    out.mkdir(parents=True, exist_ok=True)  # only now: a refused dataset or fold plan leaves no folder behind
    (out / "folds.json").write_text(json.dumps({
        "format": "nasfer-folds/1", "group_regex": cv.group_regex, "seed": train_cfg.seed,
        "folds": [{"fold": f + 1, "subjects": sorted(set(groups[idx].tolist())), "n": int(len(idx)),
                   "class_counts": {label_names[c]: int(n) for c, n in
                                    enumerate(np.bincount(data.labels[idx], minlength=len(label_names)))}}
                  for f, idx in enumerate(folds)],
        "assignment": assignment,
    }, indent=1))

    quiet_data = dataclasses.replace(data, notes=[])  # notes printed once above, not once per fold
    per_fold: list[dict[str, Any]] = []
    all_true, all_probs, all_fold = [], [], []
    for f, test_idx in enumerate(folds):
        started = time.perf_counter()
        fold_dir = out / f"fold-{f + 1:02d}"
        fold_dir.mkdir(parents=True, exist_ok=True)
        roles = fold_roles(len(data), test_idx, data.labels, groups, train_cfg.val_fraction, train_cfg.seed + f + 1)
        split_path = fold_dir / "splits.json"
        write_split_file(split_path, keys, roles, data=data_cfg.data, fold=f + 1, folds=cv.folds,
                         group_regex=cv.group_regex)
        test_subjects = sorted(set(groups[test_idx].tolist()))
        log(f"fold {f + 1}/{cv.folds}: testing {len(test_idx)} images of {len(test_subjects)} subjects "
            f"({', '.join(test_subjects[:6])}{', ...' if len(test_subjects) > 6 else ''}); training on "
            f"{int((roles == TRAIN).sum())}, validating on {int((roles == VAL).sum())}")
        cfg = dataclasses.replace(train_cfg, out=str(fold_dir), split_file=str(split_path), test_fraction=0.0,
                                  preset=None)
        trainer = prepare_run(cfg, data_cfg, dataset=quiet_data, progress=progress)
        try:
            trainer.run()
        except RecipeChanged as exc:  # before: the single run's advice, `nasfer train --init-from` one fold
            raise ModelError(
                f"--out {out}: fold {f + 1} was trained with other flags ({'; '.join(exc.changes)}): a crossval "
                f"continues only with the flags it started with ({', '.join(RESUMABLE_FLAGS)} may change); give a "
                "new --out to cross-validate with these flags") from exc
        probs = trainer.test_probabilities()
        y = trainer.test_y
        report = score_predictions(y, probs, label_names)
        best_val = max((h["val_acc"] for h in trainer.history), default=float("nan"))
        seconds = time.perf_counter() - started
        per_fold.append({
            "fold": f + 1, "run": fold_dir.name, "subjects": test_subjects, "n_test": int(len(y)),
            "n_train": int(len(trainer.train_y)), "n_val": int(len(trainer.val_y)),
            "accuracy": float(report["accuracy"]), "macro_f1": float(report["macro_f1"]),
            "best_val_accuracy": float(best_val), "seconds": round(seconds, 1),
        })
        all_true.append(y)
        all_probs.append(probs)
        all_fold.append(np.full(len(y), f + 1))
        log(f"fold {f + 1}/{cv.folds}: accuracy {report['accuracy']:.3f}  macro-F1 {report['macro_f1']:.3f}  "
            f"(best val {best_val:.3f}, {seconds:.0f}s)")

    y_all = np.concatenate(all_true)
    p_all = np.concatenate(all_probs)
    pooled = score_predictions(y_all, p_all, label_names)
    result = {
        "format": FORMAT,
        "protocol": (f"{cv.folds}-fold subject-independent cross-validation: folds hold out whole subjects "
                     f"(id = first group of {cv.group_regex!r} in the file name); validation for model "
                     "selection is carved from each fold's training subjects; every image is tested exactly once"),
        "command": command,
        "data": data_cfg.data,
        "n": int(len(y_all)),
        "subjects": n_subjects,
        "folds": cv.folds,
        "labels": label_names,
        "init_from": train_cfg.init_from,
        "accuracy": summarize([r["accuracy"] for r in per_fold]),
        "macro_f1": summarize([r["macro_f1"] for r in per_fold]),
        "per_fold": per_fold,
        "pooled": pooled,
        "confusion": pooled.get("confusion"),
        "notes": list(data.notes),
        "skipped": len(data.skipped),
        "config": {"crossval": to_dict(cv), "train": to_dict(train_cfg), "data": to_dict(data_cfg)},
    }
    (out / "crossval.json").write_text(json.dumps(result, indent=1))
    result["confusion_png"] = str(_plot_confusion(pooled, out / "confusion.png"))
    acc, f1 = result["accuracy"], result["macro_f1"]
    log(f"crossval: accuracy {acc['mean']:.3f} ± {acc['std']:.3f}  macro-F1 {f1['mean']:.3f} ± {f1['std']:.3f} "
        f"over {cv.folds} folds ({len(y_all)} images) -> {out / 'crossval.json'}")
    return result


__all__ = ["CrossvalConfig", "run_crossval", "fold_roles", "validation_subjects", "summarize"]
