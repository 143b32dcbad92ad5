"""One table of exported models: accuracy from their cards, size from the graph, speed measured here.

For each .onnx (with its model card beside it): PublicTest accuracy and macro-F1 as stored in the card
by `nasfer export --metrics` (`nasfer evaluate --json` output), parameters and multiply-adds from the
card, whether it is int8, CPU milliseconds per face at batch 1 on one thread and faces/s at batch 64
through nasfer's ONNX Runtime engine (median over `--seconds` of repeated runs, models measured in turn
`--rounds` times, median of the rounds; the load average is recorded: compare rows of one run only), and, where `--search RUN_DIR` names the search that found a
model's cell, that search's cost in CPU-hours (wall-clock minutes x torch threads, from its summary.json).
Used for the architecture-search comparison (REINFORCE cell vs random cell vs NASNet-A at matched
parameters) and for default-vs-fast. Usage:

    python benchmarks/model_table.py runs/nas/reinforce.onnx runs/nas/random.onnx runs/nas/nasnet-a.onnx \
        --search reinforce.onnx=runs/nas-reinforce --search random.onnx=runs/nas-random \
        --out benchmarks/results/nas_retrain.json
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np

from common import timeit, write_result


def search_cost(run: Path) -> dict[str, Any]:
    """CPU-hours of a finished search (loop + final re-scoring) from its summary.json and config."""
    summary = json.loads((run / "summary.json").read_text())
    threads = summary["config"].get("threads") or 1
    minutes = summary["elapsed_s"] / 60
    return {"run": str(run), "strategy": summary["strategy"], "children": summary["steps"],
            "minutes": round(minutes, 1), "threads": threads, "cpu_hours": round(minutes * threads / 60, 2),
            "reward_mean_first_quarter": summary["reward_mean_first_quarter"],
            "reward_mean_last_quarter": summary["reward_mean_last_quarter"]}


def describe(path: Path, split: str) -> dict[str, Any]:
    """What the card says about a model: name, size, accuracy under `split`, quantization, TTA, command."""
    from nasfer.runtime.engine import read_card
    from nasfer.tta import builtin_tta

    card = read_card(path)
    arch = card.get("architecture") or {}
    metrics = (card.get("metrics") or {}).get(split) or {}
    return {
        "model": str(path), "name": card.get("name"), "architecture": arch.get("name"),
        "genotype": arch.get("genotype") is not None, "params": arch.get("params"), "flops": arch.get("flops"),
        "onnx_mb": round(path.stat().st_size / 2**20, 2),
        "quantization": (card.get("quantization") or {}).get("format") or "fp32", "builtin_tta": builtin_tta(card),
        "accuracy": metrics.get("accuracy"), "macro_f1": metrics.get("macro_f1"),
        "tta": metrics.get("tta"), "split": split if metrics else None,
        "recorded": metrics.get("recorded"),
        "validation_parity": (card.get("quantization") or {}).get("parity"),
        "training_command": "; ".join((card.get("training") or {}).get("commands") or [])
                            or (card.get("training") or {}).get("command"),
    }


def speed(path: Path, threads: int, seconds: float) -> dict[str, float]:
    """Median seconds per call through the engine: batch 1 on one thread, batch 64 on `threads` (0: all)."""
    from nasfer.runtime.engine import Classifier

    rng = np.random.default_rng(0)
    one, batch = (rng.integers(0, 256, (n, 48, 48), dtype=np.uint8) for n in (1, 64))
    single, multi = Classifier(path, threads=1), Classifier(path, threads=threads or None)
    return {"s1": timeit(lambda: single.predict(one), seconds)["median_s"],
            "s64": timeit(lambda: multi.predict(batch), seconds)["median_s"]}


def measure_all(paths: list[Path], threads: int, seconds: float, split: str, rounds: int) -> list[dict[str, Any]]:
    """Cards plus speed, the models measured in turn `rounds` times (a load change hits all of them alike);
    each figure is the median over the rounds, the per-round values are kept."""
    rows = [describe(p, split) for p in paths]
    per_round: list[list[dict[str, float]]] = [[] for _ in paths]
    for _ in range(rounds):
        for i, path in enumerate(paths):
            per_round[i].append(speed(path, threads, seconds))
    for row, runs in zip(rows, per_round):
        row["ms_per_face_batch_1_one_thread"] = round(1e3 * float(np.median([r["s1"] for r in runs])), 3)
        row["faces_per_s_batch_64"] = round(64 / float(np.median([r["s64"] for r in runs])), 1)
        row["faces_per_s_batch_64_rounds"] = [round(64 / r["s64"], 1) for r in runs]
    return rows


def fmt(value: Any, spec: str) -> str:
    return "" if value is None else format(value, spec)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("models", nargs="+", type=Path, help=".onnx files with their model cards")
    parser.add_argument("--search", action="append", default=[], metavar="MODEL_FILE_NAME=RUN_DIR",
                        help="the search run whose best cell a model is (for its search cost)")
    parser.add_argument("--split", default="PublicTest", help="metrics stored in the cards under this name")
    parser.add_argument("--threads", type=int, default=0, help="ONNX Runtime threads (0: all cores)")
    parser.add_argument("--seconds", type=float, default=3.0, help="time spent on each speed measurement")
    parser.add_argument("--rounds", type=int, default=3, help="measure all models in turn this many times")
    parser.add_argument("--out", default="benchmarks/results/model_table.json")
    args = parser.parse_args()
    searches = dict(item.split("=", 1) for item in args.search)
    load_before = os.getloadavg()
    rows = measure_all(args.models, args.threads, args.seconds, args.split, args.rounds)
    for path, row in zip(args.models, rows):
        if path.name in searches:
            row["search"] = search_cost(Path(searches[path.name]))
        acc = fmt(row["accuracy"] and 100 * row["accuracy"], ".2f")
        cost = fmt(row.get("search", {}).get("cpu_hours"), ".2f")
        print(f"| {row['name']} | {acc}% | {fmt(row['macro_f1'], '.3f')} | {row['params']:,} | "
              f"{row['flops'] / 1e6:.1f} M | {row['quantization']} | {row['ms_per_face_batch_1_one_thread']:.2f} | "
              f"{row['faces_per_s_batch_64']:,.0f} | "
              f"{cost} |")
    write_result({"benchmark": "model_table", "threads": args.threads or "all cores", "machine": platform.platform(),
                  "cpus": os.cpu_count(), "load_average_before": load_before, "load_average_after": os.getloadavg(),
                  "rounds": args.rounds, "command": "python benchmarks/model_table.py " + " ".join(sys.argv[1:]),
                  "date": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()), "models": rows}, args.out)


if __name__ == "__main__":
    main()
