"""`fit()`: train a registered model (or a NASNet from a genotype) on a face dataset, as a pipeline of steps.

    fit = recipe (preset, fine-tuning defaults) -> load data -> plan split -> epochs for the data size
          -> build / start the model -> distillation targets -> optimiser, schedule, EMA -> the loop

Each step is a function of `nasfer.training` (data, model, optim, loop), `nasfer.finetune`, `nasfer.distill`
or `nasfer.distributed`; `prepare_run` calls them in that order and hands the result to a `Trainer`, which
only loops: train an epoch, validate (raw weights and EMA), checkpoint, repeat.

Resumable by construction: every epoch draws its shuffling, augmentation and dropout from RNGs seeded by
(seed, epoch), and `last.pt` holds model, optimizer, scheduler and EMA state, so a run killed after epoch k
and restarted with the same command gives the same weights as one that was never interrupted.
Every run writes `splits.json` (each image's role: train/val/test) so `--split-file` can repeat it;
datasets without an official split get a seeded stratified test part, scored into `test.json`.
"""

from __future__ import annotations

import dataclasses
import json
import sys
import time
from pathlib import Path
from typing import Any, Callable

import numpy as np
import torch
from torch import nn

from .atomic import write_text_atomic
from .checkpoint import load_checkpoint, make_checkpoint, save_checkpoint, strip_training_state
from .config import DataConfig, TrainConfig, apply_preset, resolve_auto, to_dict
from .data import FaceDataset
from .data.augment import Augment
from .data.splits import write_split_file
from .distributed import Context
from .errors import ModelError
from .metrics import classification_report
from .models.registry import resolved_kwargs
from .training.data import TrainData, load_dataset, plan_split, prepare_data, training_mask, training_split
from .training.loop import batch_loss, epoch_order, evaluate_model, make_batch, validation_sums
from .training.model import ModelStart, build_model, memory_format_for, start_model
from .training.optim import Optimization, class_weights, lr_multiplier, make_ema, make_optimization
from .training.checks import RESUMABLE_FLAGS, RecipeChanged, check_inputs, recipe_changes
from .training.precision import run_precision, slow_bf16_warning


def score_predictions(y_true: np.ndarray, probs: np.ndarray, label_names: list[str] | tuple[str, ...]) -> dict[str, Any]:
    """`nasfer.metrics.classification_report` of int labels (N,) against probabilities (N, K), as a plain dict."""
    return dict(classification_report(np.asarray(y_true, dtype=np.int64), np.asarray(probs, dtype=np.float64),
                                      list(label_names)))


class Trainer:
    """The loop of one run in one directory: `run()` resumes from `last.pt` when it exists.

    Built by `prepare_run` from the pipeline's parts; it owns no setup of its own.
    """

    def __init__(self, cfg: TrainConfig, data_cfg: DataConfig, data: TrainData, start: ModelStart, opt: Optimization,
                 *, memory_format: torch.memory_format, teacher: Any = None,
                 distillation: dict[str, Any] | None = None, ctx: Context = Context(), progress: bool = True):
        self.cfg, self.data_cfg, self.data, self.start, self.opt = cfg, data_cfg, data, start, opt
        self.teacher, self.distillation, self.ctx = teacher, distillation, ctx
        self.progress = progress and ctx.is_main
        self.out = Path(cfg.out)
        self.model = start.model
        self.memory_format = memory_format  # the model's, set by prepare_run: batches follow it
        self.augment = Augment(cfg.crop_padding, cfg.flip, cfg.rotation, cfg.scale, cfg.cutout, cfg.random_erasing)
        self.history: list[dict[str, float]] = []
        self.best_val = -1.0
        self.start_epoch = 0
        self._net: nn.Module | None = None
        self._net_trainable: tuple[bool, ...] | None = None

    # shortcuts the callers (crossval, tests) read
    label_names = property(lambda self: self.data.label_names)
    train_y = property(lambda self: self.data.train_y)
    val_y = property(lambda self: self.data.val_y)
    test_y = property(lambda self: self.data.test_y)
    ema = property(lambda self: self.opt.ema)
    preprocessing = property(lambda self: self.start.preprocessing)

    def log(self, message: str) -> None:
        if self.progress:
            print(message, flush=True)

    # -- state
    def checkpoint(self, epoch: int, val_acc: float, weights: str = "raw") -> dict[str, Any]:
        """Checkpoint of the raw weights, or of the EMA weights (`weights="ema"`), with the training state a
        resumed run needs (last.pt; best.pt is written without it: `strip_training_state`)."""
        model = self.ema.module if weights == "ema" else self.model
        extra: dict[str, Any] = {"weights": weights}
        if self.ema is not None:
            extra["ema_state_dict"] = {k: v.detach().cpu() for k, v in self.ema.state_dict().items()}
        config = {"train": to_dict(self.cfg), "data": to_dict(self.data_cfg), **self.provenance()}
        return make_checkpoint(
            model=model, model_name=self.start.name, model_kwargs=self.start.kwargs,
            labels=self.label_names, preprocessing=self.preprocessing, config=config,
            epoch=epoch, metrics={"val_accuracy": val_acc, "best_val_accuracy": max(self.best_val, val_acc)},
            history=self.history, optimizer=self.opt.optimizer.state_dict(), scheduler=self.opt.scheduler.state_dict(),
            n_train=int(len(self.train_y)), n_val=int(len(self.val_y)), skipped=self.data.skipped,
            **({"finetune": self.start.transfer} if self.start.transfer else {}), **extra,
        )

    def provenance(self) -> dict[str, Any]:
        """The optional config sections saying where the model came from: its teacher and its search."""
        return {**({"distillation": self.distillation} if self.distillation else {}),
                **({"search": self.start.search} if self.start.search else {})}

    def resume(self) -> None:
        """Load model, EMA, optimizer, scheduler and history from `last.pt` when the run directory has one."""
        last = self.out / "last.pt"
        if not last.exists():
            return
        ckpt = load_checkpoint(last)
        name, kwargs = ckpt["model"]["name"], ckpt["model"]["kwargs"]
        if name != self.start.name or resolved_kwargs(name, kwargs) != resolved_kwargs(name, self.start.kwargs):
            raise ModelError(f"{last} holds a different model ({ckpt['model']['name']}); use a new --out")
        changed = recipe_changes((ckpt.get("config") or {}).get("train") or {}, to_dict(self.cfg))
        if changed:
            raise RecipeChanged(
                f"{last} was trained with other flags ({'; '.join(changed)}): a run continues only with the flags "
                f"it started with ({', '.join(RESUMABLE_FLAGS)} may change), since its learning-rate schedule and "
                f"data were planned for them. To train on from it, start a new run: nasfer train --init-from "
                f"{self.out / 'best.pt'} --out NEW_DIR ...", last, changed)
        self.model.load_state_dict(ckpt["state_dict"])
        if self.ema is not None:
            if "ema_state_dict" not in ckpt:
                raise ModelError(f"{last} was trained without --ema-decay; resume it without, or use a new --out")
            self.ema.load_state_dict(ckpt["ema_state_dict"])
        self.opt.optimizer.load_state_dict(ckpt["optimizer"])
        self.opt.scheduler.load_state_dict(ckpt["scheduler"])
        self.history = list(ckpt.get("history", []))
        self.best_val = float(ckpt["metrics"]["best_val_accuracy"])
        self.start_epoch = int(ckpt["epoch"]) + 1

    # -- one epoch
    def network(self) -> nn.Module:
        """The module the step calls (DDP-wrapped when distributed; re-wrapped when the trainable set changes)."""
        trainable = tuple(p.requires_grad for p in self.model.parameters())
        if self._net is None or trainable != self._net_trainable:
            self._net, self._net_trainable = self.ctx.wrap(self.model), trainable
        return self._net

    def train_epoch(self, epoch: int) -> tuple[float, float]:
        """(mean loss, accuracy) over the epoch's training images, all ranks together."""
        from tqdm import tqdm

        cfg = self.cfg
        order, gen = epoch_order(len(self.train_y), cfg.seed, epoch, self.ctx.rank)
        self.model.train()
        if self.start.head_params is not None:
            from .finetune import set_backbone_frozen

            set_backbone_frozen(self.model, self.start.head_params, frozen=epoch < cfg.freeze_epochs)
        net = self.network()
        total_loss = total_correct = seen = 0.0
        bar = tqdm(range(self.opt.steps_per_epoch), desc=f"epoch {epoch + 1}/{cfg.epochs}",
                   disable=not (self.progress and sys.stderr.isatty()), leave=False, unit="batch")
        for step in bar:
            idx = order[step * cfg.batch_size:(step + 1) * cfg.batch_size]
            batch = make_batch(idx, self.data.train_x, self.data.train_y, self.augment, gen, self.preprocessing,
                               mixup=cfg.mixup, teacher=self.teacher, shard=self.ctx.shard(), device=cfg.device,
                               memory_format=self.memory_format)
            with torch.autocast(torch.device(cfg.device).type, dtype=torch.bfloat16, enabled=cfg.precision == "bf16"):
                loss, logits = batch_loss(net, batch, self.opt.loss_fn, distill_alpha=cfg.distill_alpha,
                                          temperature=cfg.distill_temperature)
            self.opt.optimizer.zero_grad(set_to_none=True)
            loss.backward()
            self.opt.optimizer.step()
            self.opt.scheduler.step()
            if self.ema is not None:
                self.ema.update_parameters(self.model)
            n = len(batch.y)
            total_loss += loss.item() * n
            total_correct += (logits.argmax(1) == batch.y).sum().item()
            seen += n
            bar.set_postfix(loss=f"{total_loss / seen:.3f}", acc=f"{total_correct / seen:.3f}")
        total_loss, total_correct, seen = self.ctx.sum([total_loss, total_correct, seen])
        return total_loss / seen, total_correct / seen

    def validate(self, model: nn.Module | None = None) -> tuple[float, float]:
        """(mean NLL, accuracy) of `model` (default: the raw weights) on the validation split, all ranks together."""
        shard = self.ctx.shard()
        sums = validation_sums(model or self.model, self.data.val_x[shard], self.data.val_y[shard],
                               self.preprocessing, tta=self.cfg.tta, device=self.cfg.device)
        nll, correct, n = self.ctx.sum(sums)
        return float(np.float32(nll) / np.float32(n)), float(np.float32(correct) / np.float32(n))

    def run(self) -> Path:
        """Train from the first unfinished epoch to --epochs; return the run directory."""
        main = self.ctx.is_main
        self.resume()
        if main:
            self.out.mkdir(parents=True, exist_ok=True)
            self.write_run_files()
        state = f"resuming after epoch {self.start_epoch}" if self.start_epoch else "new run"
        self.log(f"run directory {self.out} ({state}); checkpoints every epoch: if this run is interrupted, "
                 f"the same command continues it")
        if self.start_epoch == 0 and self.start.transfer:
            from .finetune import TransferReport

            fresh = TransferReport(**self.start.transfer).fresh_rows
            if fresh:  # those rows are random: the start is not a model of these labels, the epochs must decide
                self.log(f"starting point not a candidate for best.pt: the head rows of {', '.join(fresh)} are new")
            else:
                self.score_starting_point()
        for epoch in range(self.start_epoch, self.cfg.epochs):
            started = time.perf_counter()
            train_loss, train_acc = self.train_epoch(epoch)
            val_loss, val_acc = self.validate()
            record = {"epoch": epoch + 1, "train_loss": train_loss, "train_acc": train_acc, "val_loss": val_loss,
                      "val_acc": val_acc}
            weights, score = "raw", val_acc
            if self.ema is not None:
                record["val_loss_ema"], record["val_acc_ema"] = self.validate(self.ema.module)
                if record["val_acc_ema"] >= val_acc:
                    weights, score = "ema", record["val_acc_ema"]
            seconds = time.perf_counter() - started
            self.history.append({**record, "lr": self.opt.optimizer.param_groups[0]["lr"], "seconds": seconds,
                                 "images_per_second": len(self.train_y) / seconds})
            improved = score > self.best_val
            if main and improved:
                save_checkpoint(self.out / "best.pt", strip_training_state(self.checkpoint(epoch, score, weights)))
            self.best_val = max(self.best_val, score)
            if main:
                save_checkpoint(self.out / "last.pt", self.checkpoint(epoch, val_acc))
                self.write_history()
            ema = f"  ema acc {record['val_acc_ema']:.3f}" if self.ema is not None else ""
            self.log(f"epoch {epoch + 1}/{self.cfg.epochs}  train loss {train_loss:.3f} acc {train_acc:.3f}  "
                     f"val loss {val_loss:.3f} acc {val_acc:.3f}{ema}{'  *best (' + weights + ')' if improved else ''}"
                     f"  ({seconds:.0f}s)")
        self.ctx.barrier()
        if main and len(self.test_y):
            self.write_test_report()
        return self.out

    def score_starting_point(self) -> None:
        """Fine-tuning: the --init-from weights as loaded are best.pt's first candidate (epoch 0), so a run
        whose epochs all score lower on validation ends where it started instead of somewhere worse.

        Only when every head row came from the checkpoint: with a label it did not know, the start has a
        random row and is no model of the run's labels (an epoch that ties it must still win)."""
        val_loss, val_acc = self.validate()
        self.best_val = val_acc
        if self.ctx.is_main:
            save_checkpoint(self.out / "best.pt", strip_training_state(self.checkpoint(-1, val_acc)))
        self.log(f"starting point (the --init-from weights): val loss {val_loss:.3f} acc {val_acc:.3f}; "
                 f"best.pt holds it until an epoch scores higher")

    # -- files (rank 0)
    def write_run_files(self) -> None:
        """config.json (what this run is) and splits.json (each image's role)."""
        (self.out / "config.json").write_text(json.dumps(
            {"train": to_dict(self.cfg), "data": to_dict(self.data_cfg), "model": self.start.name,
             "model_kwargs": self.start.kwargs, "labels": list(self.label_names),
             **({"finetune": self.start.transfer} if self.start.transfer else {}),
             **self.provenance(),
             **({"distributed": {"processes": self.ctx.world, "backend": self.ctx.backend,
                                 "global_batch": self.cfg.batch_size,
                                 "batch_per_process": self.cfg.batch_size // self.ctx.world}}
                if self.ctx.active else {})}, indent=2))
        write_split_file(self.out / "splits.json", self.data.keys, self.data.roles, data=self.data_cfg.data,
                         seed=self.cfg.seed, val_fraction=self.cfg.val_fraction,
                         test_fraction=self.cfg.test_fraction, reused=self.cfg.split_file)

    def test_probabilities(self) -> np.ndarray:
        """Probabilities float32 (N_test, K) of the best checkpoint on the held-out test images."""
        from .checkpoint import load_model

        if not len(self.test_y):
            return np.zeros((0, len(self.label_names)), dtype=np.float32)
        model, _ = load_model(self.out / "best.pt")
        return evaluate_model(model.to(self.cfg.device), self.data.test_x, self.preprocessing, tta=self.cfg.tta,
                              device=self.cfg.device)

    def write_test_report(self) -> dict[str, Any]:
        """test.json: the best checkpoint's scores and per-image predictions on the held-out test part."""
        probs = self.test_probabilities()
        report = score_predictions(self.test_y, probs, self.label_names)
        pred = probs.argmax(1)
        tta = "flip" if self.cfg.tta else "none"  # as validation chose best.pt; `nasfer export --tta` keeps it
        report = {"split": "test", "checkpoint": "best.pt", "tta": tta, **report, "predictions": [
            {"image": str(key), "label": self.label_names[int(y)], "predicted": self.label_names[int(p)],
             "confidence": round(float(probs[i, p]), 4)}
            for i, (key, y, p) in enumerate(zip(self.data.test_keys.tolist(), self.test_y, pred))]}
        (self.out / "test.json").write_text(json.dumps(report, indent=1))
        self.log(f"test: accuracy {report['accuracy']:.3f}  macro-F1 {report['macro_f1']:.3f} on "
                 f"{len(self.test_y)} held-out images (TTA: {tta}) -> {self.out / 'test.json'}")
        return report

    def write_history(self) -> None:
        write_text_atomic(self.out / "history.json", json.dumps(self.history, indent=2))  # read by other processes
        from .plots import plot_training_curves

        plot_training_curves(self.history, self.out / "curves.png")


# ---------------------------------------------------------------------------- the pipeline


def prepare_run(cfg: TrainConfig, data_cfg: DataConfig, *, dataset: FaceDataset | None = None, progress: bool = True,
                ctx: Context = Context()) -> Trainer:
    """Every step before the loop, in order; returns the Trainer ready to `run()`.

    Raises DataError (unreadable data, an empty split, training images of one class), ModelError (bad
    --init-from / --teacher), ValueError (inconsistent flags).
    """
    log: Callable[[str], None] = (lambda msg: print(msg, flush=True)) if progress and ctx.is_main else (lambda msg: None)
    cfg = dataclasses.replace(apply_preset(cfg).validate(), device=ctx.device(cfg.device))
    cfg = dataclasses.replace(cfg, precision=run_precision(cfg, Path(cfg.out)))
    warning = slow_bf16_warning(cfg.precision, cfg.device)
    if warning:
        log(warning)
    if cfg.threads:
        torch.set_num_threads(cfg.threads)
    check_inputs(cfg, data_cfg, dataset)                          # fail before reading a large dataset
    out = Path(cfg.out)
    data = prepare_data(cfg, data_cfg, out, dataset=dataset, log=log)               # load data, plan split
    auto = cfg
    cfg = resolve_auto(cfg, len(data.train_y))                    # epochs, batch, lr left at 0: from the data
    if cfg.init_from and cfg != auto:
        log(f"fine-tuning {len(data.train_y)} images: {cfg.epochs} epochs, batch {cfg.batch_size}, lr {cfg.lr:g} "
            f"(backbone x{cfg.backbone_lr_mult:g})")
    if cfg.freeze_epochs >= cfg.epochs > 0:  # before: not said; a linear probe is allowed, but should be seen
        log(f"--freeze-epochs {cfg.freeze_epochs}: the backbone stays frozen for all {cfg.epochs} "
            f"epoch{'s' * (cfg.epochs != 1)}; only the classifier head trains")
    elif cfg.freeze_epochs:
        log(f"backbone frozen for the first {cfg.freeze_epochs} epoch{'s' if cfg.freeze_epochs > 1 else ''}, "
            "then trained")
    ctx.check_batch(cfg.batch_size)
    torch.manual_seed(cfg.seed)
    start = start_model(cfg, data.label_names, log=log)           # from scratch, or from a checkpoint
    start.model = ctx.prepare(start.model)
    memory_format = memory_format_for(start.model, cfg.precision)
    start.model.to(cfg.device, memory_format=memory_format)
    teacher, distillation = None, None
    if cfg.teacher:
        from .distill import prepare_teacher

        teacher, distillation = prepare_teacher(cfg, data, out, ctx, log=log)       # cached soft targets
    opt = make_optimization(cfg, start.model, data.train_y, data.num_classes, start.head_params)
    if ctx.active:
        log(f"data-parallel: {ctx.world} processes ({ctx.backend}), global batch {cfg.batch_size} = "
            f"{ctx.world} x {cfg.batch_size // ctx.world}")
    return Trainer(cfg, data_cfg, data, start, opt, memory_format=memory_format, teacher=teacher,
                   distillation=distillation, ctx=ctx, progress=progress)


def fit(cfg: TrainConfig, data_cfg: DataConfig, *, dataset: FaceDataset | None = None, progress: bool = True) -> Path:
    """Train (or resume) and return the run directory holding best.pt, last.pt, history.json, curves.png.

    Under torchrun (WORLD_SIZE > 1) the run is data-parallel (`nasfer.distributed`). Raises what
    `check_inputs` and `prepare_run` raise, and RunLocked when another process writes in `cfg.out`; a refused
    run leaves no run directory (or lock file) behind that it made.
    """
    from contextlib import nullcontext

    from .distributed import session
    from .runlock import run_lock

    # an impossible flag, a missing --data, --split-file or --init-from fails before the run directory is made
    check_inputs(apply_preset(cfg).validate(), data_cfg, dataset)
    with session(cfg.device) as ctx:
        # one writer per run directory (rank 0 writes): a second `nasfer train --out DIR` stops at once. A run
        # refused later (bad images, an empty split, a checkpoint that does not fit) removes the directory it
        # made and its lock file; a run directory that was there before (a resumed run) is kept as it was.
        with run_lock(cfg.out, "training run", clean_up=True) if cfg.out and ctx.is_main else nullcontext():
            return prepare_run(cfg, data_cfg, dataset=dataset, progress=progress, ctx=ctx).run()


__all__ = ["fit", "prepare_run", "check_inputs", "Trainer", "score_predictions", "evaluate_model", "lr_multiplier",
           "class_weights", "make_ema", "build_model", "memory_format_for", "training_split", "training_mask",
           "load_dataset", "plan_split"]
