"""Knowledge distillation (`nasfer train --teacher MODEL`): soft targets from a teacher, computed once.

Hinton, Vinyals & Dean (2015), "Distilling the Knowledge in a Neural Network": the student minimises
(1 - alpha) * CE(hard labels) + alpha * T^2 * KL(softmax(z_t / T) || softmax(z_s / T)).

The teacher is a shipped model's name (`default`, `fast`), an exported `.onnx` (run by the torch-free
engine, with its model card) or a training checkpoint (`.pt`). Its outputs for every training image AND
its mirror image are computed once, before the first epoch, and cached in the run directory
(`teacher_cache.npz`, log-probabilities at T = 1, from which any temperature follows: softmax(log p / T) =
softmax(z / T)). The cache is keyed by the teacher file's SHA-256, the student's label names and the
training images (names and pixels): a resumed run reuses it, a different teacher or dataset recomputes it.

Targets and augmentation: the teacher saw the un-augmented crop. When the augmentation mirrors an image,
its target is the teacher's output for the mirror image; shifts, small rotations, zoom and erasing keep
the un-augmented image's target (they do not change the expression); mixup mixes targets like labels.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable

import numpy as np
import torch
import torch.nn.functional as F

from .errors import ModelError

if TYPE_CHECKING:
    from .config import TrainConfig
    from .distributed import Context
    from .training.data import TrainData

CACHE_NAME = "teacher_cache.npz"
CACHE_FORMAT = "nasfer-teacher-cache/1"


def distillation_loss(student_logits: torch.Tensor, teacher_probs: torch.Tensor, temperature: float) -> torch.Tensor:
    """T^2 * KL(teacher || student) at temperature T, averaged over the batch (a float32 scalar).

    student_logits: (B, K) raw scores; teacher_probs: (B, K) teacher probabilities already at temperature T.
    """
    log_student = F.log_softmax(student_logits.float() / temperature, dim=1)
    return F.kl_div(log_student, teacher_probs.float(), reduction="batchmean") * (temperature ** 2)


@dataclass(frozen=True)
class Teacher:
    """A resolved --teacher: what kind of file it is, where, its SHA-256 and its label names."""

    name: str            # as given on the command line
    kind: str            # "onnx" | "checkpoint"
    path: Path
    sha256: str
    labels: tuple[str, ...]

    def to_dict(self) -> dict[str, Any]:
        return {"teacher": self.name, "kind": self.kind, "path": str(self.path), "sha256": self.sha256,
                "labels": list(self.labels)}


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def resolve_teacher(name: str) -> Teacher:
    """--teacher -> Teacher. ModelError for a missing file, an unknown shipped name or another file type."""
    from .weights import resolve_model

    path = resolve_model(name)
    suffix = path.suffix.lower()
    if suffix == ".onnx":
        from .runtime.engine import read_card

        return Teacher(name, "onnx", path, _sha256(path), tuple(read_card(path)["labels"]))
    if suffix in (".pt", ".pth"):
        from .checkpoint import load_checkpoint

        return Teacher(name, "checkpoint", path, _sha256(path), tuple(load_checkpoint(path)["labels"]))
    raise ModelError(f"{path}: a teacher is an exported .onnx (with its card) or a training checkpoint .pt")


def label_columns(teacher_labels: tuple[str, ...], labels: tuple[str, ...]) -> list[int]:
    """Column of the teacher's output for each student label (exact name first, then synonyms).

    ModelError naming the labels the teacher has no output for.
    """
    from .finetune import match_labels

    rows = match_labels(list(labels), list(teacher_labels))
    missing = [label for label, old in rows.items() if old is None]
    if missing:
        raise ModelError(f"the teacher has no output for {', '.join(missing)} (its labels: "
                         f"{', '.join(teacher_labels)}); distil only onto labels the teacher knows")
    return [list(teacher_labels).index(rows[label]) for label in labels]


def teacher_log_probs(teacher: Teacher, images: np.ndarray, labels: tuple[str, ...], *, threads: int = 0,
                      device: str = "cpu") -> tuple[np.ndarray, np.ndarray]:
    """(log p (N, K), log p of the mirror images (N, K)), float32, columns in the order of `labels`.

    images: uint8 crops (N, S, S) at the teacher's input size. Where the teacher knows more labels than the
    student, the student's columns are renormalised to sum to 1.
    """
    cols = label_columns(teacher.labels, labels)
    mirror = np.ascontiguousarray(images[:, :, ::-1])
    if teacher.kind == "onnx":
        from .runtime.engine import Classifier

        clf = Classifier(teacher.path, threads=threads or None)
        if images.shape[1:] != (clf.size, clf.size):
            raise ModelError(f"{teacher.path}: the teacher takes {clf.size}x{clf.size} crops, the data is "
                             f"{images.shape[1]}x{images.shape[2]}")
        probs = [clf.predict(images), clf.predict(mirror)]
    else:
        from .checkpoint import load_model, preprocessing_of
        from .training.loop import evaluate_model

        model, ckpt = load_model(teacher.path)
        model.to(device)
        spec = preprocessing_of(ckpt)
        probs = [evaluate_model(model, x, spec, device=device) for x in (images, mirror)]
    out = []
    for p in probs:
        p = np.asarray(p, dtype=np.float64)[:, cols]
        p = p / np.maximum(p.sum(1, keepdims=True), 1e-12)
        out.append(np.log(np.maximum(p, 1e-12)).astype(np.float32))
    return out[0], out[1]


def cache_key(teacher: Teacher, labels: tuple[str, ...], keys: np.ndarray, images: torch.Tensor | np.ndarray) -> str:
    """SHA-256 over the teacher file, the label names and the training images (names and pixels)."""
    digest = hashlib.sha256()
    digest.update(json.dumps({"teacher": teacher.sha256, "labels": list(labels)}).encode())
    digest.update("\n".join(np.asarray(keys).astype(str).tolist()).encode())
    digest.update(np.ascontiguousarray(np.asarray(images)).tobytes())
    return digest.hexdigest()


class TeacherTargets:
    """The teacher's probabilities at temperature T for the training images and their mirrors.

    log_p, log_p_mirror: float32 (n_train, K) log-probabilities at T = 1, in training-part order.
    """

    def __init__(self, log_p: np.ndarray, log_p_mirror: np.ndarray, temperature: float):
        if temperature <= 0:
            raise ValueError(f"--distill-temperature must be positive, got {temperature}")
        self.temperature = temperature
        self.probs = torch.softmax(torch.from_numpy(log_p) / temperature, dim=1)
        self.probs_mirror = torch.softmax(torch.from_numpy(log_p_mirror) / temperature, dim=1)

    def targets(self, idx: torch.Tensor, flipped: torch.Tensor) -> torch.Tensor:
        """float32 (B, K) soft targets of training images `idx` (B,); `flipped` (B,) bool picks the mirror's."""
        return torch.where(flipped.view(-1, 1), self.probs_mirror[idx], self.probs[idx])


def load_or_compute(teacher: Teacher, train_x: torch.Tensor, train_keys: np.ndarray, labels: tuple[str, ...],
                    cache: Path, *, write: bool = True, threads: int = 0, device: str = "cpu",
                    log: Callable[[str], None] = lambda msg: None) -> tuple[np.ndarray, np.ndarray]:
    """The cached teacher log-probabilities when `cache` holds them for this key; else computed (and written
    when `write`, i.e. on the process that writes the run's files)."""
    images = train_x[:, 0].numpy() if isinstance(train_x, torch.Tensor) else np.asarray(train_x)
    key = cache_key(teacher, labels, train_keys, images)
    if cache.is_file():
        try:
            with np.load(cache, allow_pickle=False) as z:
                if str(z["key"]) == key:
                    log(f"distillation: teacher outputs reused from {cache}")
                    return z["log_p"], z["log_p_mirror"]
            log(f"distillation: {cache} was made for another teacher or dataset: recomputing")
        except (OSError, ValueError, KeyError) as exc:
            log(f"distillation: {cache} is unreadable ({exc}): recomputing")
    log(f"distillation: computing {teacher.name} ({teacher.kind}) on {len(images)} training images and their "
        f"mirrors, once")
    log_p, log_p_mirror = teacher_log_probs(teacher, images, labels, threads=threads, device=device)
    if write:
        tmp = cache.with_name(cache.name + ".tmp.npz")
        np.savez(tmp, format=CACHE_FORMAT, key=key, log_p=log_p, log_p_mirror=log_p_mirror,
                 teacher=json.dumps(teacher.to_dict()), labels=np.asarray(labels))
        tmp.replace(cache)
    return log_p, log_p_mirror


def prepare_teacher(cfg: TrainConfig, data: TrainData, out: Path, ctx: Context, *,
                    log: Callable[[str], None] = lambda msg: None) -> tuple[TeacherTargets, dict[str, Any]]:
    """Training step: the soft targets of --teacher for `data`'s training images, and the record of the
    distillation for the checkpoint config (teacher name, kind, file, SHA-256, labels, alpha, T, cache file).

    Rank 0 computes and writes the cache; the other ranks wait for it and read it. ValueError for alpha outside [0, 1] or T <= 0.
    """
    if not 0.0 <= cfg.distill_alpha <= 1.0:
        raise ValueError(f"--distill-alpha must be in [0, 1], got {cfg.distill_alpha}")
    if cfg.distill_temperature <= 0:
        raise ValueError(f"--distill-temperature must be positive, got {cfg.distill_temperature}")
    teacher = resolve_teacher(cfg.teacher)
    cache = out / CACHE_NAME
    kwargs = dict(threads=cfg.threads, device=cfg.device, log=log)
    if ctx.is_main:
        out.mkdir(parents=True, exist_ok=True)
        log_p, log_p_mirror = load_or_compute(teacher, data.train_x, data.train_keys, data.label_names, cache, **kwargs)
        ctx.barrier()
    else:
        ctx.barrier()
        log_p, log_p_mirror = load_or_compute(teacher, data.train_x, data.train_keys, data.label_names, cache,
                                              write=False, **kwargs)
    record = {**teacher.to_dict(), "alpha": cfg.distill_alpha, "temperature": cfg.distill_temperature,
              "cache": CACHE_NAME, "method": "Hinton et al. 2015: (1-alpha) CE + alpha T^2 KL; "
                                             "mirror's targets for flipped images"}
    return TeacherTargets(log_p, log_p_mirror, cfg.distill_temperature), record


__all__ = ["distillation_loss", "prepare_teacher", "Teacher", "resolve_teacher", "label_columns", "teacher_log_probs", "cache_key",
           "TeacherTargets", "load_or_compute", "CACHE_NAME"]
