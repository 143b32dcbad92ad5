"""Search an architecture under a time budget (resumable): successive halving over fidelities, a latency-aware
objective, and one of three strategies on a declared search space.

Spaces: macro (default; MnasNet-style stages of plain 3x3 / depthwise-separable / NASNet-cell blocks, VGG and
mini-Xception are points of it) or nasnet (the design's NASNet cells, searched at the depth they are retrained at).
Strategies: reinforce (LSTM controller, batched REINFORCE), random (the control), evolution (regularized evolution).
Every child is trained from scratch at the cheapest rung (its reward); ASHA promotes the best third to each
next rung. Reward: validation accuracy (held out of Training, never the test split) * (ms per face /
--latency-target-ms) ** --latency-w, latency of the exported ONNX graph in ONNX Runtime, 1 thread.

Writes <out>/search_log.jsonl (one line per job), search_state.pt (resume: run the same command again; an
interrupted search keeps the time it spent), best_arch.json (nasfer train --genotype; with --space nasnet, train
it with --width F --cells N as searched: the command printed at the end and in summary.json says so),
pareto.json + pareto.png, summary.json, latency_cache.json. Off a terminal (a log file), one line per finished
child or promotion is printed.

Examples:
  nasfer search --data fer2013.zip --budget-minutes 120 --out runs/search-macro
  nasfer search --data fer2013.zip --strategy evolution --seed 1 --out runs/search-evo-s1
  nasfer search --data fer2013.zip --space nasnet --rungs 150s@24 1e@48 --out runs/search-cells
  nasfer train --data fer2013.zip --genotype runs/search-macro/best_arch.json --out runs/macro
"""

from __future__ import annotations

import argparse

from .. import config
from ..nas import ray_backend

NAME = "search"
HELP = "search an architecture under a time budget (resumable)"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    from ..nas.config import SearchConfig

    config.add_arguments(parser, SearchConfig)
    ray_backend.add_arguments(parser)  # --backend ray and its flags (Ray is imported only when used)


def run(args: argparse.Namespace) -> int:
    import sys

    from ..errors import DataError
    from ..nas.config import SearchConfig
    from ..nas.results import rung_calibration
    from ..nas.search import search

    cfg = config.from_args(SearchConfig, args)
    if not cfg.data:
        raise DataError("--data is required (a dataset zip, folder or fer2013.csv)")
    rung_calibration(cfg.calibration, list(cfg.rungs))  # an unreadable --calibration fails now, not hours later
    if ray_backend.requested(args):
        result = ray_backend.search_from_args(cfg, args)
    else:
        try:
            result = search(cfg)
        except KeyboardInterrupt as exc:  # Ctrl-C or SIGTERM (nasfer.interrupts.Terminated: exit 143)
            from ..interrupts import Terminated

            how = "stopped (SIGTERM)" if isinstance(exc, Terminated) else "interrupted"
            print(f"nasfer search: {how}; the same command continues it from {cfg.out} (the time spent so "
                  f"far counts against --budget-minutes)", file=sys.stderr)
            return 143 if isinstance(exc, Terminated) else 130
    if result is None:
        return 130  # a Ray search was interrupted: the same command continues it
    best = result.summary["best"]
    batch = cfg.latency_batch
    ms = (best["latency"] or {}).get(f"ms_per_face_b{batch}")
    shown = f", {ms:.3f} ms/face (batch {batch}, ONNX Runtime, 1 thread)" if ms is not None else ""
    print(f"best child #{best['child']}: validation accuracy {best['accuracy']:.4f} at {best['fidelity']}{shown}; "
          f"{result.summary['children']} children in {result.summary['elapsed_s'] / 60:.1f} min")
    print(f"wrote {result.out / 'best_arch.json'}, pareto.json/png and summary.json; train it with: "
          f"{result.summary['train_command']}")
    return 0
