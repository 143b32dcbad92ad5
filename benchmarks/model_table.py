"""One table of exported models: accuracy from their cards, size from the graph, speed measured here.

For each .onnx (with its model card beside it): PublicTest accuracy and macro-F1 as stored in the card
by `nasfer export --metrics` (`nasfer evaluate --json` output), parameters and multiply-adds from the
card, whether it is int8, CPU milliseconds per face at batch 1 on one thread and faces/s at batch 64
through nasfer's ONNX Runtime engine (median over `--seconds` of repeated runs, models measured in turn
`--rounds` times, median of the rounds; the load average is recorded: compare rows of one run only), and,
where `--search RUN_DIR` names the search that found a model's cell, that search's cost in CPU-hours (wall-clock minutes x torch threads, from its summary.json).
Used for the architecture-search comparison (REINFORCE cell vs random cell vs NASNet-A at matched
parameters) and for default-vs-fast. Usage:

    python benchmarks/model_table.py runs/nas/reinforce.onnx runs/nas/random.onnx runs/nas/nasnet-a.onnx \
        --search reinforce.onnx=runs/nas-reinforce --search random.onnx=runs/nas-random \
        --out benchmarks/results/nas_retrain.json

`--fer` adds the `fer` package's row (its own model and preprocessing; see fer_row.py), timed in the same
rounds; run the script with the python of a venv that has fer and nasfer (benchmarks/accuracy_vs_fer.py's
docstring). `--plot FILE.png` draws accuracy against ms per face with the Pareto front (pareto.py); the
table's last column and the JSON's `pareto_front` say which rows are on it. Issue 12's table (the README's
Speed section has the exact command of each table it shows):

    python benchmarks/model_table.py src/nasfer/weights/default.onnx src/nasfer/weights/fast.onnx \
        CONTROLS.onnx NASNET_A.onnx --fer --plot docs/results/pareto.png --out benchmarks/results/model_table_issue12.json
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import time
from pathlib import Path
from typing import Any, Callable

import numpy as np

from common import cpu_model, cpu_speed_flags, timeit, write_result
from fer_row import ACCURACY_FILE, FerClassifier, describe_fer, require_fer
from pareto import pareto_front, write_plot


def search_cost(run: Path) -> dict[str, Any]:
    """CPU-hours of a finished search (loop + final re-scoring) from its summary.json and config."""
    summary = json.loads((run / "summary.json").read_text())
    threads = summary["config"].get("threads") or 1
    minutes = summary["elapsed_s"] / 60
    return {"run": str(run), "strategy": summary["strategy"], "children": summary["children"],
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
        "model": str(path), "name": card.get("name"), "package": "nasfer", "architecture": arch.get("name"),
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
    """Median seconds per call through the engine: batch 1 on one thread, batch 64 on `threads` (0: all),
    and the process's CPU seconds per wall second during each (common.timeit)."""
    from nasfer.runtime.engine import Classifier

    rng = np.random.default_rng(0)
    one, batch = (rng.integers(0, 256, (n, 48, 48), dtype=np.uint8) for n in (1, 64))
    single, multi = Classifier(path, threads=1), Classifier(path, threads=threads or None)
    t1, t64 = timeit(lambda: single.predict(one), seconds), timeit(lambda: multi.predict(batch), seconds)
    return {"s1": t1["median_s"], "s64": t64["median_s"],
            "cpu_per_wall_1": t1["cpu_per_wall"], "cpu_per_wall_64": t64["cpu_per_wall"]}


def measure_all(rows: list[dict[str, Any]], timers: list[Callable[[], dict[str, float]]],
                rounds: int) -> list[dict[str, Any]]:
    """Adds speed to each row: its timer (a call returning `speed`'s dict) run in turn with the others
    `rounds` times (a load change hits all of them alike); each figure is the median over the rounds,
    the per-round throughputs are kept."""
    per_round: list[list[dict[str, float]]] = [[] for _ in timers]
    for _ in range(rounds):
        for i, timer in enumerate(timers):
            per_round[i].append(timer())
    for row, runs in zip(rows, per_round):
        row["ms_per_face_batch_1_one_thread"] = round(1e3 * float(np.median([r["s1"] for r in runs])), 3)
        row["faces_per_s_batch_64"] = round(64 / float(np.median([r["s64"] for r in runs])), 1)
        row["faces_per_s_batch_64_rounds"] = [round(64 / r["s64"], 1) for r in runs]
        row["cpu_per_wall"] = {f"batch_{b}": round(float(np.median([r[f"cpu_per_wall_{b}"] for r in runs])), 2)
                               for b in (1, 64)}
    return rows


def fmt(value: Any, spec: str) -> str:
    return "" if value is None else format(value, spec)


HEADER = ("| model | accuracy | macro-F1 | parameters | multiply-adds | weights | ms per face (batch 1, 1 thread) "
          "| faces/s (batch 64) | search CPU-h | Pareto front |\n|---|---|---|---|---|---|---|---|---|---|")


def table_line(row: dict[str, Any]) -> str:
    """One markdown line of the table (HEADER's columns); empty cells for figures a row lacks."""
    acc = "" if row["accuracy"] is None else f"{100 * row['accuracy']:.2f}%"
    macs = "" if row["flops"] is None else f"{row['flops'] / 1e6:.1f} M"
    return (f"| {row['name']} | {acc} | {fmt(row['macro_f1'], '.3f')} | {fmt(row['params'], ',')} | "
            f"{macs} | {row['quantization']} | "
            f"{row['ms_per_face_batch_1_one_thread']:.2f} | {row['faces_per_s_batch_64']:,.0f} | "
            f"{fmt(row.get('search', {}).get('cpu_hours'), '.2f')} | {'yes' if row['pareto_front'] else 'no'} |")


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("models", nargs="+", type=Path, help=".onnx files with their model cards")
    parser.add_argument("--search", action="append", default=[], metavar="MODEL_FILE_NAME=RUN_DIR",
                        help="the search run whose best cell a model is (for its search cost)")
    parser.add_argument("--split", default="PublicTest", help="metrics stored in the cards under this name")
    parser.add_argument("--threads", type=int, default=0, help="ONNX Runtime threads (0: all cores)")
    parser.add_argument("--seconds", type=float, default=3.0, help="time spent on each speed measurement")
    parser.add_argument("--rounds", type=int, default=3, help="measure all models in turn this many times")
    parser.add_argument("--fer", action="store_true",
                        help="add the `fer` package's row, measured in the same rounds (needs fer's venv)")
    parser.add_argument("--fer-offsets", type=int, default=0,
                        help="fer's `offsets` (px added to each side of a face box) for its speed and the "
                             "accuracy_vs_fer.json entry quoted (0: the given crop, as nasfer gets it)")
    parser.add_argument("--fer-accuracy", type=Path, default=ACCURACY_FILE,
                        help="accuracy_vs_fer.py's JSON, where fer's accuracy is taken from")
    parser.add_argument("--plot", type=Path, metavar="FILE.png", help="accuracy against ms per face, Pareto front")
    parser.add_argument("--out", default="benchmarks/results/model_table.json")
    args = parser.parse_args(argv)
    if args.fer:
        require_fer()  # fail before minutes of measuring
    missing = [str(p) for p in args.models if not p.is_file()]
    if missing:
        raise SystemExit(f"model_table.py: no such model file: {', '.join(missing)}")
    searches = dict(item.split("=", 1) for item in args.search)
    load_before = os.getloadavg()
    rows = [describe(p, args.split) for p in args.models]
    timers = [(lambda p=p: speed(p, args.threads, args.seconds)) for p in args.models]
    if args.fer:
        fer = FerClassifier(args.fer_offsets, args.threads)
        rows.append(describe_fer(args.split, args.fer_offsets, args.fer_accuracy, fer.settings))
        timers.append(lambda: fer(args.seconds))
    measure_all(rows, timers, args.rounds)
    front = pareto_front(rows)
    for i, row in enumerate(rows):
        row["pareto_front"] = i in front
        if Path(row["model"]).name in searches:
            row["search"] = search_cost(Path(searches[Path(row["model"]).name]))
    print(HEADER)
    for row in rows:
        print(table_line(row))
    write_result({"benchmark": "model_table", "threads": args.threads or "all cores", "machine": platform.platform(),
                  "cpu": cpu_model(), "cpu_flags": cpu_speed_flags(), "cpus": os.cpu_count(),
                  "load_average_before": load_before, "load_average_after": os.getloadavg(),
                  "rounds": args.rounds, "command": "python benchmarks/model_table.py " + " ".join(sys.argv[1:] if argv is None else argv),
                  "date": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
                  "pareto_front": [rows[i]["name"] for i in front], "plot": str(args.plot) if args.plot else None,
                  "models": rows}, args.out)
    if args.plot:  # after the result is written: a plot that cannot be written loses no measurement
        title = f"FER2013 {args.split}: accuracy against CPU latency"
        print(f"wrote {write_plot(rows, args.plot, title=title)}")


if __name__ == "__main__":
    main()
