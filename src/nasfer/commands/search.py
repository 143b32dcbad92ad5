"""Search a cell architecture (NASNet-style) under a time budget; an existing --out directory is resumed.

The reward is the accuracy of sampled children on a part held out of Training (never the test split).
Strategies: reinforce (LSTM controller + shared weights, ENAS), random (uniform sampling, same budget:
the control), reinforce-full (each child trained briefly from scratch, as the original NASNet).

Writes <out>/search_log.jsonl (one line per controller step), search_state.pt (resume),
best_genotype.json, summary.json and best_normal.png / best_reduction.png.

Examples (on FER2013 the shared weights do not leave the class-prior plateau within a CPU budget:
children trained from scratch are the evaluator that gives signal there, see nasfer.nas.search):
  nasfer search --data fer2013.zip --budget-minutes 75 --strategy reinforce-full --image-size 24 \
      --controller-lr 0.01 --threads 2 --out runs/search
  nasfer search --data fer2013.zip --budget-minutes 75 --strategy random --evaluator scratch \
      --image-size 24 --threads 2 --out runs/search-random          # the same-budget control
  nasfer search --data fer2013.zip --budget-minutes 75 --out runs/search-enas     # shared weights (ENAS)
  nasfer search ... --target-ms 5          # latency-aware reward (MnasNet): acc * (ms / 5) ** -0.07
  nasfer train --data fer2013.zip --genotype runs/search/best_genotype.json --out runs/nas
"""

from __future__ import annotations

import argparse

from .. import config
from ..nas import ray_backend

NAME = "search"
HELP = "search a cell architecture under a time budget (resumable)"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    from ..nas.config import SearchConfig

    config.add_arguments(parser, SearchConfig)
    ray_backend.add_arguments(parser)  # --backend ray and its flags (Ray is imported only when used)


def run(args: argparse.Namespace) -> int:
    from ..errors import DataError
    from ..nas.search import SearchConfig, search

    cfg = config.from_args(SearchConfig, args)
    if not cfg.data:
        raise DataError("--data is required (a dataset zip, folder or fer2013.csv)")
    result = ray_backend.search_from_args(cfg, args) if ray_backend.requested(args) else search(cfg)
    if result is None:
        return 130  # a Ray search was interrupted: the same command continues it
    s = result.summary
    print(f"best genotype: {result.best}")
    latency = f", {s['latency_ms']:.1f} ms/face" if s.get("latency_ms") is not None else ""
    how = ("with the supernet's shared weights" if s["evaluator"] == "shared"
           else f"after {cfg.child_steps} steps from scratch (mean of 2 seeds)")
    print(f"proxy validation accuracy {s['accuracy']:.4f} {how}{latency}; "
          f"{s['steps']} controller steps in {s['elapsed_s'] / 60:.1f} min")
    print(f"wrote {result.out / 'best_genotype.json'} and {result.out / 'summary.json'}; train it with: "
          f"nasfer train --data {cfg.data} --genotype {result.out / 'best_genotype.json'} --out runs/nas")
    return 0
