"""`SearchConfig`: the flags of `nasfer search`, and `check_config`, their checks; kept torch-free so building
the CLI never imports torch (the space and strategy are imported when a config is checked)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from ..config import option


@dataclass
class SearchConfig:
    """Everything `nasfer search` needs: space, strategy, fidelities (successive halving), objective, budget."""

    data: str = option("", "dataset path (zip, folder or fer2013.csv); only its Training part is read")
    out: str = option("runs/search", "output directory; an existing search there is resumed")
    budget_minutes: float = option(60.0, "wall-clock budget: no child is started that would not finish within it")
    space: Literal["macro", "nasnet"] = option(
        "macro", "search space: macro (MnasNet-style stages of plain / separable / NASNet-cell blocks; VGG and "
                 "mini-Xception are points of it) or nasnet (the design's NASNet normal + reduction cells)")
    strategy: Literal["reinforce", "random", "evolution"] = option(
        "reinforce", "reinforce: LSTM controller, batched REINFORCE; random: uniform sampling (the control); "
                     "evolution: regularized (aging) evolution")
    blocks: int = option(5, "blocks per NASNet cell (B)")
    F: int = option(16, "nasnet space: filters of the first stack, as retrained (nasfer train --width)", flag="--filters")
    N: int = option(2, "nasnet space: normal cells per stack, as retrained (searching at the retraining depth)",
                    flag="--cells")
    rungs: tuple[str, ...] = option(
        ("150s@24", "1e@48", "3e@48"),
        "fidelities of successive halving, cheap to dear: <steps>s@<px> or <epochs>e@<px>, step rungs first, "
        "each costing more (steps or epochs x px^2) than the one before; every child is "
        "trained at the first (its reward), the best 1/eta of each rung at the next")
    eta: int = option(3, "successive halving: 1/eta of each rung is promoted (ASHA)")
    latency_target_ms: float = option(
        0.3, "latency objective (MnasNet): reward = accuracy * (ms per face / target) ** w, ms per face in ONNX "
             "Runtime CPU with 1 thread (0: accuracy only)")
    latency_w: float = option(-0.07, "exponent w of the latency objective (MnasNet's soft constraint)")
    latency_batch: Literal[1, 64] = option(1, "batch size of the latency in the objective (1: per-face latency; "
                                              "64: throughput, ms per face at batch 64)")
    max_latency_ms: float = option(
        1.5, "hard limit: a child slower than this (ms per face, same batch) is not trained and gets reward 0, "
             "so the budget is not spent on networks far beyond the target (0: no limit)")
    latency_cache: str = option("", "JSON file of latency measurements by architecture hash, shared between "
                                    "searches on this machine (default: <out>/latency_cache.json)")
    split_file: str = option("", "split file (as nasfer train writes, <run>/splits.json): the validation part "
                                 "that scores children (default: drawn from --seed and --val-fraction like nasfer train)")
    val_fraction: float = option(0.1, "part of Training held out to score children (stratified, as nasfer train)")
    subset: int = option(0, "training images children learn from, a stratified subset (0: all)")
    reinforce_batch: int = option(8, "reinforce: children per controller update (advantages standardised within it)")
    controller_lr: float = option(0.05, "reinforce: Adam learning rate of the controller")
    entropy_weight: float = option(0.05, "reinforce: entropy bonus weight (per nat, on standardised advantages)")
    temperature: float = option(5.0, "reinforce: controller softmax temperature")
    tanh_constant: float = option(2.5, "reinforce: controller logit clipping c * tanh(logits) (0: no clipping)")
    population: int = option(20, "evolution: population size (the oldest member dies)")
    tournament: int = option(5, "evolution: tournament sample size")
    child_lr: float = option(3e-3, "peak AdamW learning rate of each child (nasfer train's default)")
    child_batch: int = option(128, "batch size of each child")
    precision: Literal["auto", "bf16", "fp32"] = option(
        "auto", "autocast precision of the children's training steps (auto: bf16 where the CPU computes it natively, "
                "else fp32; nasfer train's --precision)")
    max_children: int = option(0, "also stop after this many distinct children (0: only the time budget)")
    top_k: int = option(5, "children listed in summary.json")
    calibration: str = option("", "a proxy calibration result (benchmarks/proxy_calibration.py's JSON): each rung's "
                                   "Kendall tau with full training is recorded in best_arch.json and summary.json, "
                                   "and so in the card of a model trained from it")
    seed: int = option(0, "random seed (split, children's initialisation and batches, strategy)")
    threads: int = option(1, "torch CPU threads for training children (latency is always timed on 1 thread)")
    progress: bool = option(True, "show a progress bar (only on a terminal)")


def make_search_space(cfg: SearchConfig):
    """The search space `cfg` declares (`nasfer.nas.space.make_space`)."""
    from .space import make_space

    options = {"blocks": cfg.blocks} if cfg.space == "macro" else {"blocks": cfg.blocks, "F": cfg.F, "N": cfg.N}
    return make_space(cfg.space, **options)


def make_search_strategy(cfg: SearchConfig, space):
    """The strategy `cfg` names over `space`, with its flags (`nasfer.nas.strategy.make_strategy`)."""
    from .strategy import make_strategy

    options: dict[str, Any] = {"seed": cfg.seed}
    if cfg.strategy == "reinforce":
        options.update(batch_size=cfg.reinforce_batch, lr=cfg.controller_lr, entropy_weight=cfg.entropy_weight,
                       temperature=cfg.temperature, tanh_constant=cfg.tanh_constant)
    elif cfg.strategy == "evolution":
        options.update(population=cfg.population, sample_size=cfg.tournament)
    return make_strategy(cfg.strategy, space, **options)


#: What a search (local or Ray) writes in its --out; a folder holding anything else is not given to a new search.
SEARCH_FILES = ("config.json", "search_state.pt", "search_log.jsonl", "best_arch.json", "best_genotype.json",
                "pareto.json", "pareto.png", "summary.json", "latency_cache.json", "ray_tune", "ray_finished.json",
                "ray_clock.json", "rungs.json", "best_normal.png", "best_reduction.png", "latency_cache.json.lock")
#: Files only a search writes, at its start: a folder holding one is a search to resume.
#: What only a Ray backend search leaves in its folder (ray_tune.EXPERIMENT, ray_backend.CLOCK_FILE).
RAY_SEARCH_MARKS = ("ray_tune", "ray_clock.json")
#: The local backend's resumable state (nas.search).
STATE_FILE = "search_state.pt"
SEARCH_MARKS = (STATE_FILE, "search_log.jsonl", *RAY_SEARCH_MARKS)



def check_local_locations(cfg: SearchConfig) -> None:
    """The local backend's refusals of its locations, before any data is read: ModelError for an --out holding a
    Ray backend's search (a new local search there would append to its log and replace its results: continue it
    with --backend ray), LatencyCacheError for an --latency-cache that cannot be the cache (one error now, not
    one failed child after another)."""
    from ..errors import ModelError
    from .latency import check_cache_location

    out = Path(cfg.out).expanduser()
    if not (out / STATE_FILE).exists() and any((out / name).exists() for name in RAY_SEARCH_MARKS):
        raise ModelError(f"{out} holds a search of the Ray backend; continue it with --backend ray, or use a new --out")
    if cfg.latency_cache:
        check_cache_location(cfg.latency_cache)

#: SearchConfig fields that only one strategy reads.
STRATEGY_FIELDS = {"reinforce": ("reinforce_batch", "controller_lr", "entropy_weight", "temperature", "tanh_constant"),
                   "evolution": ("population", "tournament")}


def unused_strategy_flags(cfg: SearchConfig) -> list[str]:
    """A note for each other strategy whose flags `cfg` sets away from their defaults: they do nothing with
    `cfg.strategy`. Notes, not refusals: a retraining campaign passes one set of search flags to searches of
    several strategies (benchmarks/retrain.py --search-flags)."""
    from ..config import changed_flags

    notes = []
    for strategy, names in STRATEGY_FIELDS.items():
        flags = changed_flags(cfg, names) if strategy != cfg.strategy else []
        if flags:
            notes.append(f"{', '.join(flags)} only appl{'ies' if len(flags) == 1 else 'y'} with --strategy {strategy}: "
                         f"ignored by --strategy {cfg.strategy}")
    return notes


def check_config(cfg: SearchConfig) -> list:
    """The parsed rungs; ValueError naming the flag for anything out of range (NaN and infinity included:
    every float flag must be a finite number), for rungs not in order from cheap to dear, for --filters or
    --cells without --space nasnet, or for an --out that is a file."""
    import dataclasses

    from ..config import changed_flags, flag_of
    from ..validation import (check, check_new_run_folder, check_only_with, check_output_folder, finite,
                              is_training_run_config, threads_check)
    from .fidelity import Fidelity

    flags = {f.name: flag_of(f) for f in dataclasses.fields(cfg)}
    if cfg.strategy == "evolution":  # its real bounds, stated once (not the generic "at least 1" first)
        check([(cfg.population >= 2,
                f"--population must be at least 2 with --strategy evolution, got {cfg.population}"),
               (2 <= cfg.tournament <= cfg.population, f"--tournament must be 2..--population ({cfg.population}) "
                                                       f"with --strategy evolution, got {cfg.tournament}")])
    for name in ("blocks", "F", "N", "reinforce_batch", "population", "tournament", "child_batch", "top_k"):
        if getattr(cfg, name) < 1:
            raise ValueError(f"{flags[name]} must be at least 1, got {getattr(cfg, name)}")
    if cfg.space != "nasnet":  # before: accepted, and the macro space ignored them
        check_only_with(changed_flags(cfg, ("F", "N")), "--space nasnet")
    floats = ("budget_minutes", "latency_target_ms", "latency_w", "max_latency_ms", "val_fraction", "controller_lr",
              "entropy_weight", "temperature", "tanh_constant", "child_lr")
    check([(cfg.eta >= 2, f"--eta must be at least 2 (the best 1/eta of each rung is promoted), got {cfg.eta}"),
           (cfg.budget_minutes > 0 and finite(cfg.budget_minutes * 60.0),
            f"--budget-minutes must be positive and finite (minutes of wall-clock time), got {cfg.budget_minutes}"),
           *((finite(getattr(cfg, name)), f"{flags[name]} must be a finite number, got {getattr(cfg, name)}")
             for name in floats),
           (cfg.latency_target_ms >= 0, f"--latency-target-ms must be >= 0, got {cfg.latency_target_ms}"),
           (cfg.latency_w <= 0, f"--latency-w must be <= 0 (a penalty on slower children; 0: none), got {cfg.latency_w}"),
           (cfg.max_latency_ms >= 0, f"--max-latency-ms must be >= 0 (0: no limit), got {cfg.max_latency_ms}"),
           (0 < cfg.val_fraction < 1, f"--val-fraction must be in (0, 1), got {cfg.val_fraction}"),
           (cfg.subset >= 0, f"--subset must be >= 0 (0: all), got {cfg.subset}"),
           (cfg.controller_lr > 0, f"--controller-lr must be positive, got {cfg.controller_lr}"),
           (cfg.entropy_weight >= 0, f"--entropy-weight must be >= 0, got {cfg.entropy_weight}"),
           (cfg.temperature > 0, f"--temperature must be positive, got {cfg.temperature}"),
           (cfg.tanh_constant >= 0, f"--tanh-constant must be >= 0 (0: no clipping), got {cfg.tanh_constant}"),
           (cfg.child_lr > 0, f"--child-lr must be positive, got {cfg.child_lr}"),
           (cfg.max_children >= 0, f"--max-children must be >= 0 (0: only the time budget), got {cfg.max_children}"),
           (cfg.seed >= 0, f"--seed must be >= 0, got {cfg.seed}"),
           threads_check(cfg.threads, zero="torch's default")])
    check_output_folder(cfg.out, "the search directory")
    out = Path(cfg.out).expanduser()
    if not any((out / name).exists() for name in SEARCH_MARKS):  # a new search (an earlier one resumes)
        check_new_run_folder(cfg.out, "a search", SEARCH_FILES)  # before: a training run's config.json was replaced
    config_file = out / "config.json"
    if config_file.is_file() and is_training_run_config(config_file):
        raise ValueError(f"--out {cfg.out}: its config.json is a training run's; give the search a new or empty "
                         "folder (nothing was done)")
    if not cfg.rungs:
        raise ValueError("--rungs needs at least one fidelity")
    fidelities = [Fidelity.parse(r) for r in cfg.rungs]
    # successive halving promotes to ever dearer rungs; how many steps an epoch is depends on the data, so step
    # rungs (the cheap proxies) come first, and rungs of one kind are compared by amount x px^2 (Fidelity.cost)
    check([(not (low.unit == "e" and high.unit == "s")
            and (low.unit != high.unit or high.amount * high.size ** 2 > low.amount * low.size ** 2),
            "--rungs must go from cheap to dear: step rungs (<n>s@<px>) before epoch rungs, each costing more "
            f"(steps or epochs x px^2) than the one before it; got {high} after {low}")
           for low, high in zip(fidelities, fidelities[1:])])
    make_search_strategy(cfg, make_search_space(cfg))  # the space's and strategy's own checks
    return fidelities
