"""`search(cfg)`: NASNet-style architecture search under a wall-clock budget, resumable.

One loop serves every strategy; only the parts plugged into it change:

- strategy (`nasfer.nas.strategy`): `reinforce` (LSTM controller + REINFORCE) or `random` (uniform);
- evaluator (`nasfer.nas.evaluators`): shared weights (ENAS) for `reinforce` and `random`, training
  each child from scratch (the original NASNet procedure) for `reinforce-full`; or any `reward_fn`
  passed in (a toy reward in tests), in which case no data is read;
- reward: the evaluator's accuracy on a validation part held out of Training (the test split is
  never read), optionally times (latency / target) ** w (MnasNet).

An epoch is `shared_steps` SGD steps of the shared weights on children the strategy samples, then
`controller_steps` controller updates, each scoring one sampled child on one validation batch
(`random` samples and scores exactly as many children: the same budget, no learning). Every
controller step is a line of `search_log.jsonl`; every epoch ends with `search_state.pt` (shared
weights, controller, optimizers, RNG and batch positions), from which an interrupted search resumes.
At the budget, the best genotypes of the second half are re-scored on the whole validation part and
the winner is written to `best_genotype.json` (for `nasfer train --genotype`) with `summary.json`.

Measured on FER2013 (F=8, N=1 supernets, this op set): shared weights trained on uniformly sampled
children stay at the class-prior loss (~1.82) for 3,000 steps at 16 px and 1,200 at 24 px, while any
one fixed child starts learning within 50 steps; two choices per edge already delay it by hundreds. Children
interfere too much for a supernet to leave that plateau in a 60-90 minute CPU budget, so there
the scratch evaluator (`reinforce-full`, with `--strategy random --evaluator scratch` as its
control) is the one whose rewards carry signal; shared weights remain the fast path for easier data.
"""

from __future__ import annotations

import json
import math
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

import numpy as np
import torch

from ..config import to_dict
from ..errors import DataError, ModelError
from .config import SearchConfig
from .genotype import Genotype

STATE_FILE = "search_state.pt"
LOG_FILE = "search_log.jsonl"
SAVE_EVERY_S = 60.0  # besides every epoch end: at most this much work is lost to an interruption


#: Fields that may change when a search is resumed; any other difference is a different search.
RESUMABLE_CHANGES = ("out", "budget_minutes", "max_steps", "threads", "progress", "top_k")


@dataclass
class SearchData:
    """Training and held-out images in pixel units (float 0..255, (N, 1, S, S)), int64 labels."""

    train_x: torch.Tensor
    train_y: torch.Tensor
    val_x: torch.Tensor
    val_y: torch.Tensor
    label_names: tuple[str, ...]
    notes: list[str]


@dataclass
class SearchResult:
    out: Path
    best: Genotype
    score: float
    summary: dict[str, Any]


# ---------------------------------------------------------------------------- data


def _resize(images: np.ndarray, size: int) -> torch.Tensor:
    x = torch.from_numpy(np.ascontiguousarray(images)).unsqueeze(1).float()
    if x.shape[-1] == size and x.shape[-2] == size:
        return x
    mode = "area" if size < x.shape[-1] else "bilinear"
    return torch.nn.functional.interpolate(x, size=(size, size), mode=mode).clamp_(0, 255)


def load_search_data(cfg: SearchConfig, dataset=None) -> SearchData:
    """Training part of the dataset -> (stratified subset for the weights, stratified held-out part)."""
    from ..data import read_dataset, stratified_split

    ds = dataset if dataset is not None else read_dataset(cfg.data)
    notes = list(getattr(ds, "notes", []))
    lowered = np.char.lower(np.asarray(ds.splits).astype(str))
    training = np.isin(lowered, ["training", "train"])
    if training.any():
        ds = ds.subset(training)
    else:
        notes.append(f"no Training split: searching on all {len(ds)} images (none of them may be test data)")
    n = len(ds)
    if not 0 < cfg.val_size < n:
        raise DataError(f"--val-size {cfg.val_size} must be between 1 and the {n} training images minus some")
    fit, val = stratified_split(ds.labels, cfg.val_size / n, cfg.seed)
    if 0 < cfg.subset < len(fit):
        _, keep = stratified_split(ds.labels[fit], cfg.subset / len(fit), cfg.seed)
        fit = fit[keep]
    return SearchData(
        train_x=_resize(ds.images[fit], cfg.image_size), train_y=torch.from_numpy(ds.labels[fit]).long(),
        val_x=_resize(ds.images[val], cfg.image_size), val_y=torch.from_numpy(ds.labels[val]).long(),
        label_names=tuple(ds.label_names), notes=notes,
    )


# ---------------------------------------------------------------------------- parts


def make_strategy(cfg: SearchConfig):
    from .strategy import RandomStrategy, ReinforceStrategy

    if cfg.strategy == "random":
        return RandomStrategy(cfg.B, baseline_decay=cfg.baseline_decay, seed=cfg.seed)
    return ReinforceStrategy(cfg.B, lr=cfg.controller_lr, entropy_weight=cfg.entropy_weight,
                             baseline_decay=cfg.baseline_decay, temperature=cfg.temperature,
                             tanh_constant=cfg.tanh_constant, seed=cfg.seed)


def evaluator_kind(cfg: SearchConfig) -> str:
    if cfg.evaluator == "auto":
        return "scratch" if cfg.strategy == "reinforce-full" else "shared"
    return cfg.evaluator


def make_evaluator(cfg: SearchConfig, data: SearchData):
    from ..data.augment import Augment
    from ..preprocessing import Preprocessing
    from .evaluators import FromScratch, SharedWeights
    from .supernet import SuperNet

    spec = Preprocessing()

    def normalize(x: torch.Tensor) -> torch.Tensor:
        return (x * (1.0 / 255.0) - spec.mean) / spec.std

    augment = Augment(crop_padding=max(1, round(4 * cfg.image_size / 48)), flip=True, rotation=0.0, scale=0.0)
    common = dict(batch_size=cfg.batch_size, eval_batch=cfg.eval_batch, seed=cfg.seed, augment=augment,
                  normalize=normalize)
    if evaluator_kind(cfg) == "scratch":
        scratch = {**common, "augment": augment if cfg.child_augment else None}
        return FromScratch(data.train_x, data.train_y, data.val_x, data.val_y, F=cfg.F, N=cfg.N,
                           num_classes=len(data.label_names), steps=cfg.child_steps, lr=cfg.child_lr,
                           optimizer=cfg.child_optimizer, **scratch)
    with torch.random.fork_rng():
        torch.manual_seed(cfg.seed)
        net = SuperNet(F=cfg.F, N=cfg.N, blocks=cfg.B, num_classes=len(data.label_names))
    return SharedWeights(net, data.train_x, data.train_y, data.val_x, data.val_y, lr=cfg.shared_lr, **common)


def _check_config(cfg: SearchConfig) -> None:
    positive = ("image_size", "F", "N", "B", "batch_size", "eval_batch", "controller_steps", "top_k")
    for name in positive:
        if getattr(cfg, name) < 1:
            raise ValueError(f"--{name.replace('_', '-')} must be at least 1, got {getattr(cfg, name)}")
    if cfg.budget_minutes <= 0:
        raise ValueError(f"--budget-minutes must be positive, got {cfg.budget_minutes}")
    if cfg.F % 2:
        raise ValueError(f"--filters must be even (factorized reductions halve it), got {cfg.F}")
    if cfg.strategy == "reinforce-full" and cfg.evaluator == "shared":
        raise ValueError("--strategy reinforce-full trains every child from scratch: it cannot use --evaluator shared")
    if cfg.target_ms < 0:
        raise ValueError(f"--target-ms must be >= 0, got {cfg.target_ms}")


# ---------------------------------------------------------------------------- the loop


class SearchRun:
    """One search in one directory; `run()` resumes from `search_state.pt` when it exists."""

    def __init__(self, cfg: SearchConfig, reward_fn: Callable[[Genotype], float] | None = None, *, dataset=None):
        _check_config(cfg)
        self.cfg = cfg
        self.out = Path(cfg.out)
        self.budget_s = cfg.budget_minutes * 60.0
        if cfg.threads:
            torch.set_num_threads(cfg.threads)
        self.strategy = make_strategy(cfg)
        self.trainer = None
        self.evaluator = None
        if reward_fn is None:
            if dataset is None and not cfg.data:
                raise DataError("--data is required (a dataset zip, folder or fer2013.csv)")
            data = load_search_data(cfg, dataset)
            self.notes = data.notes
            self.evaluator = make_evaluator(cfg, data)
            self.trainer = self.evaluator if hasattr(self.evaluator, "train_step") else None
            self.reward_fn: Callable[[Genotype], float] = self.evaluator
            self.rescore_fn: Callable[[Genotype], float] = self.evaluator.full
            self.n_train, self.n_val = len(data.train_y), len(data.val_y)
        else:
            self.notes = []
            self.reward_fn = self.rescore_fn = reward_fn
            self.n_train = self.n_val = 0
        # progress, restored on resume
        self.epoch = self.step = self.shared_step = 0
        self.epoch_step = 0  # controller steps already done in the current epoch
        self.elapsed_before = 0.0
        self.records: list[dict[str, Any]] = []  # one per controller step: step, reward, accuracy, latency, genotype
        self.latency: dict[Genotype, float] = {}
        self.log_lines = 0
        self.bar = None
        self.started = self.saved_at = time.monotonic()
        self.search_elapsed = 0.0
        self.timing = {"shared_s": 0.0, "shared_n": 0, "controller_s": 0.0, "controller_n": 0}

    # -- time
    def elapsed(self) -> float:
        return self.elapsed_before + (time.monotonic() - self.started)

    def done(self) -> bool:
        return self.elapsed() >= self.budget_s or (self.cfg.max_steps > 0 and self.step >= self.cfg.max_steps)

    def progress_fraction(self) -> float:
        frac = self.elapsed() / self.budget_s
        if self.cfg.max_steps > 0:
            frac = max(frac, self.step / self.cfg.max_steps)
        return min(1.0, frac)

    # -- state
    def _state(self) -> dict[str, Any]:
        return {
            "format": "nasfer-search-state/1", "config": to_dict(self.cfg),
            "epoch": self.epoch, "step": self.step, "shared_step": self.shared_step, "epoch_step": self.epoch_step,
            "elapsed": self.elapsed(),
            "log_lines": self.log_lines, "records": self.records,
            "latency": [[g.to_dict(), ms] for g, ms in self.latency.items()],
            "strategy": self.strategy.state_dict(),
            "evaluator": self.evaluator.state_dict() if self.evaluator is not None else None,
            "torch_rng": torch.get_rng_state(),
        }

    def save_state(self) -> None:
        from ..checkpoint import save_checkpoint  # atomic write

        save_checkpoint(self.out / STATE_FILE, self._state())
        self.saved_at = time.monotonic()

    def resume(self) -> bool:
        path = self.out / STATE_FILE
        if not path.exists():
            return False
        from ..checkpoint import safe_torch_load  # weights_only=True; ModelError when unreadable

        state = safe_torch_load(path, "search state")
        saved, now = state["config"], to_dict(self.cfg)
        changed = [k for k in now if k not in RESUMABLE_CHANGES and saved.get(k) != now[k]]
        if changed:
            diffs = ", ".join(f"{k}: {saved.get(k)!r} -> {now[k]!r}" for k in changed)
            raise ModelError(f"{self.out} holds a search with other settings ({diffs}); use a new --out "
                             f"(only {', '.join(RESUMABLE_CHANGES)} may change on resume)")
        self.epoch, self.step, self.shared_step = state["epoch"], state["step"], state["shared_step"]
        self.epoch_step = int(state["epoch_step"])
        self.elapsed_before = float(state["elapsed"])
        self.log_lines = int(state["log_lines"])
        self.records = list(state["records"])
        self.latency = {Genotype.from_dict(g): float(ms) for g, ms in state["latency"]}
        self.strategy.load_state_dict(state["strategy"])
        if self.evaluator is not None and state["evaluator"] is not None:
            self.evaluator.load_state_dict(state["evaluator"])
        torch.set_rng_state(state["torch_rng"])
        self._truncate_log()
        return True

    def _truncate_log(self) -> None:
        """Drop log lines written after the saved state (the steps an interruption lost are redone)."""
        log = self.out / LOG_FILE
        if log.exists():
            lines = log.read_text().splitlines(keepends=True)
            if len(lines) != self.log_lines:
                log.write_text("".join(lines[: self.log_lines]))

    def _log(self, record: dict[str, Any]) -> None:
        with open(self.out / LOG_FILE, "a") as f:
            f.write(json.dumps(record) + "\n")
        self.log_lines += 1

    # -- steps
    def _latency_ms(self, genotype: Genotype) -> float | None:
        if self.cfg.target_ms <= 0:
            return None
        if genotype not in self.latency:
            from .evaluators import measure_latency_ms

            self.latency[genotype] = measure_latency_ms(genotype)
        return self.latency[genotype]

    def _shared_phase(self) -> dict[str, Any] | None:
        if self.trainer is None or self.cfg.shared_steps <= 0:
            return None
        losses, accs = [], []
        lr = self.cfg.shared_lr
        for _ in range(self.cfg.shared_steps):
            if self.done():
                break
            start = time.monotonic()
            lr = 0.5 * self.cfg.shared_lr * (1.0 + math.cos(math.pi * self.progress_fraction()))
            loss, acc = self.trainer.train_step(self.strategy.ask(), lr)
            losses.append(loss)
            accs.append(acc)
            self.shared_step += 1
            self.timing["shared_s"] += time.monotonic() - start
            self.timing["shared_n"] += 1
            self._tick()
        if not losses:
            return None
        return {"kind": "shared", "epoch": self.epoch, "shared_steps": self.shared_step, "lr": lr,
                "loss": float(np.mean(losses)), "train_acc": float(np.mean(accs)), "elapsed": round(self.elapsed(), 3)}

    def _controller_step(self) -> dict[str, Any]:
        from .evaluators import mnas_reward

        start = time.monotonic()
        genotype = self.strategy.ask()
        accuracy = float(self.reward_fn(genotype))
        latency = self._latency_ms(genotype)
        reward = mnas_reward(accuracy, latency, self.cfg.target_ms, self.cfg.latency_w)
        stats = self.strategy.tell(genotype, reward)
        self.step += 1
        self.timing["controller_s"] += time.monotonic() - start
        self.timing["controller_n"] += 1
        record = {"kind": "controller", "step": self.step, "epoch": self.epoch, "reward": reward,
                  "accuracy": accuracy, "latency_ms": latency, "baseline": stats["baseline"],
                  "entropy": stats["entropy"], "advantage": stats["advantage"],
                  "genotype": genotype.to_dict(), "elapsed": round(self.elapsed(), 3)}
        self.records.append({k: record[k] for k in ("step", "reward", "accuracy", "latency_ms", "genotype")})
        return record

    def _tick(self, **postfix: Any) -> None:
        if self.bar is None:
            return
        if postfix:
            self.bar.set_postfix(postfix, refresh=False)
        delta = min(int(self.elapsed()), int(self.budget_s)) - self.bar.n
        if delta > 0:
            self.bar.update(delta)  # tqdm redraws at most every `mininterval`, so logs stay readable

    # -- the whole search
    def run(self) -> SearchResult:
        from tqdm import tqdm

        self.out.mkdir(parents=True, exist_ok=True)
        resumed = self.resume()
        (self.out / "config.json").write_text(json.dumps(to_dict(self.cfg), indent=1) + "\n")
        self.started = self.saved_at = time.monotonic()
        self.bar = tqdm(total=int(self.budget_s), initial=min(int(self.elapsed_before), int(self.budget_s)),
                        unit="s", disable=not self.cfg.progress, mininterval=1.0,
                        desc=f"search ({self.cfg.strategy})" + (" resumed" if resumed else ""),
                        bar_format="{desc}: {percentage:3.0f}%|{bar}| {n}/{total}s {postfix}")
        try:
            for note in self.notes:
                self.bar.write(f"data: {note}")
            while not self.done():
                if self.epoch_step == 0:
                    shared = self._shared_phase()
                    if shared is not None:
                        self._log(shared)
                while self.epoch_step < self.cfg.controller_steps and not self.done():
                    record = self._controller_step()
                    self.epoch_step += 1
                    self._log(record)
                    self._tick(epoch=self.epoch, reward=f"{record['reward']:.3f}",
                               baseline=f"{record['baseline']:.3f}", entropy=f"{record['entropy']:.1f}")
                    if time.monotonic() - self.saved_at > SAVE_EVERY_S:  # slow steps (reinforce-full)
                        self.save_state()
                if self.epoch_step >= self.cfg.controller_steps:
                    self.epoch, self.epoch_step = self.epoch + 1, 0
                    self.save_state()
        finally:
            self.bar.close()
        self.search_elapsed = self.elapsed()
        self.save_state()
        return self.finish()

    # -- the end
    def candidates(self) -> list[Genotype]:
        """Top-k distinct genotypes by reward in the second half (the shared weights are trained by then),
        plus the controller's own most likely genotype."""
        recent = self.records[len(self.records) // 2:]
        ranked = sorted(recent, key=lambda r: (-r["reward"], r["step"]))
        out: list[Genotype] = []
        for record in ranked:
            genotype = Genotype.from_dict(record["genotype"])
            if genotype not in out:
                out.append(genotype)
            if len(out) == self.cfg.top_k:
                break
        guess = self.strategy.best_guess()
        if guess is not None and guess not in out:
            out.append(guess)
        return out

    def finish(self) -> SearchResult:
        from .evaluators import mnas_reward

        if not self.records:
            raise ValueError("the budget ended before the first controller step: give a larger --budget-minutes")
        scored = []
        for genotype in self.candidates():
            accuracy = float(self.rescore_fn(genotype))
            latency = self._latency_ms(genotype)
            score = mnas_reward(accuracy, latency, self.cfg.target_ms, self.cfg.latency_w)
            rewards = [r["reward"] for r in self.records if r["genotype"] == genotype.to_dict()]
            scored.append({"score": score, "accuracy": accuracy, "latency_ms": latency,
                           "search_reward_mean": float(np.mean(rewards)) if rewards else None,
                           "times_sampled": len(rewards), "genotype": genotype.to_dict()})
        scored.sort(key=lambda s: -s["score"])
        best = Genotype.from_dict(scored[0]["genotype"])
        self._draw(best)
        summary = self._summary(scored)
        best.save(self.out / "best_genotype.json",
                  search={k: summary[k] for k in ("strategy", "score", "accuracy", "latency_ms", "steps", "elapsed_s")})
        (self.out / "summary.json").write_text(json.dumps(summary, indent=1) + "\n")
        return SearchResult(out=self.out, best=best, score=scored[0]["score"], summary=summary)

    def _summary(self, scored: list[dict[str, Any]]) -> dict[str, Any]:
        rewards = np.array([r["reward"] for r in self.records])
        quarter = max(1, len(rewards) // 4)
        t = self.timing
        return {
            "strategy": self.cfg.strategy,
            "evaluator": evaluator_kind(self.cfg) if self.evaluator is not None else "reward_fn",
            "score": scored[0]["score"], "accuracy": scored[0]["accuracy"],
            "latency_ms": scored[0]["latency_ms"], "genotype": scored[0]["genotype"],
            "steps": self.step, "shared_steps": self.shared_step, "epochs": self.epoch,
            "elapsed_s": round(self.search_elapsed, 1),
            "reward_mean_first_quarter": float(rewards[:quarter].mean()),
            "reward_mean_last_quarter": float(rewards[-quarter:].mean()),
            "distinct_genotypes": len({json.dumps(r["genotype"]) for r in self.records}),
            "seconds_per_shared_step": t["shared_s"] / t["shared_n"] if t["shared_n"] else None,
            "seconds_per_controller_step": t["controller_s"] / t["controller_n"] if t["controller_n"] else None,
            "n_train": self.n_train, "n_val": self.n_val,
            "reward": "validation accuracy (held out of Training) of each child"
                      + (f" * (latency / {self.cfg.target_ms} ms) ** {self.cfg.latency_w}" if self.cfg.target_ms > 0 else ""),
            "top_k": scored, "config": to_dict(self.cfg), "notes": self.notes,
        }

    def _draw(self, best: Genotype) -> None:
        from .plots import plot_genotype

        try:
            plot_genotype(best, self.out, prefix="best_")
        except ImportError:  # matplotlib is optional (the `train` extra); the JSON is what matters
            self.notes.append("matplotlib not installed: no cell diagrams drawn")


def search(cfg: SearchConfig, reward_fn: Callable[[Genotype], float] | None = None, *, dataset=None) -> SearchResult:
    """Run (or resume) the search described by `cfg` in `cfg.out`.

    `reward_fn` replaces the data-driven evaluator (no data is read): any genotype -> float, e.g. a toy
    reward whose optimum is known. `dataset` passes an in-memory `FaceDataset` instead of `cfg.data`.
    """
    return SearchRun(cfg, reward_fn, dataset=dataset).run()
