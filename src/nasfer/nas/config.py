"""`SearchConfig`: the flags of `nasfer search`, kept torch-free so building the CLI never imports torch."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

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
        "fidelities of successive halving, cheap to dear: <steps>s@<px> or <epochs>e@<px>; every child is "
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
    precision: Literal["bf16", "fp32"] = option("bf16", "autocast precision of the children's training steps")
    max_children: int = option(0, "also stop after this many distinct children (0: only the time budget)")
    top_k: int = option(5, "children listed in summary.json")
    calibration: str = option("", "a proxy calibration result (benchmarks/proxy_calibration.py's JSON): each rung's "
                                   "Kendall tau with full training is recorded in best_arch.json and summary.json, "
                                   "and so in the card of a model trained from it")
    seed: int = option(0, "random seed (split, children's initialisation and batches, strategy)")
    threads: int = option(1, "torch CPU threads for training children (latency is always timed on 1 thread)")
    progress: bool = option(True, "show a progress bar (only on a terminal)")
