"""Compare search strategies the way the field asks (Sciuto et al. 2020; Yang et al. 2020): several seeds per
strategy at the same budget and scheduler, judged on each run's best architecture *after retraining*.

For every search directory (`nasfer search --out DIR`): space, strategy, seed, children per rung, CPU-hours
(elapsed x threads), the rung-0 reward by quarter of the run (a learning strategy's later quarters rise),
the best child (fidelity, accuracy, ONNX Runtime ms per face, parameters). `--retrained SEARCH=RUN` pairs a
search with the `nasfer train --genotype SEARCH/best_arch.json` run that retrained its winner (best validation
accuracy from RUN/history.json), and `--evaluation SEARCH=REPORT.json` with its `nasfer evaluate --split
PublicTest --json` report (accuracy, macro-F1). Per strategy: mean, standard deviation and n over seeds.
Per run also the mean reward of the first `--early` children and of the rest and the policy's entropy
(nats) at the first and last child; `comparison` holds Welch's t-test of the first run's children's
rung-0 rewards against each other run's (Welch 1947: unequal variances; t, Welch-Satterthwaite degrees
of freedom, two-sided p). Usage:

    python benchmarks/search_compare.py runs/s-reinforce-0 runs/s-reinforce-1 runs/s-random-0 runs/s-random-1 \
        runs/s-evolution-0 runs/s-evolution-1 --retrained runs/s-reinforce-0=runs/r-reinforce-0 ... \
        --evaluation runs/s-reinforce-0=runs/r-reinforce-0/publictest.json ... \
        [--out benchmarks/results/search_compare.json]
"""

from __future__ import annotations

import argparse
import json
import math
import statistics
from pathlib import Path
from typing import Sequence

from common import write_result


def _pairs(items: list[str], flag: str) -> dict[str, Path]:
    out = {}
    for item in items:
        if "=" not in item:
            raise SystemExit(f"{flag} expects SEARCH_DIR=PATH, got {item!r}")
        search, path = item.split("=", 1)
        out[str(Path(search))] = Path(path)
    return out


def mean(values: Sequence[float]) -> float | None:
    return sum(values) / len(values) if values else None


def welch_t(a: Sequence[float], b: Sequence[float]) -> dict:
    """Welch's t statistic of mean(a) - mean(b), its Welch-Satterthwaite df and two-sided p (scipy if present)."""
    if len(a) < 2 or len(b) < 2:
        return {"t": None, "df": None, "p_two_sided": None, "n": [len(a), len(b)]}
    ma, mb = mean(a), mean(b)
    va = sum((x - ma) ** 2 for x in a) / (len(a) - 1) / len(a)
    vb = sum((x - mb) ** 2 for x in b) / (len(b) - 1) / len(b)
    if va + vb == 0:
        return {"t": None, "df": None, "p_two_sided": None, "n": [len(a), len(b)]}
    t = (ma - mb) / math.sqrt(va + vb)
    df = (va + vb) ** 2 / (va ** 2 / (len(a) - 1) + vb ** 2 / (len(b) - 1))
    try:
        from scipy import stats

        p = float(2 * stats.t.sf(abs(t), df))
    except ImportError:
        p = None
    return {"t": t, "df": df, "p_two_sided": p, "n": [len(a), len(b)]}


def summarize(run: Path, early: int = 15) -> dict:
    """One search directory; SystemExit with a clear message when it is not a finished search."""
    summary_path = run / "summary.json"
    if not summary_path.is_file():
        raise SystemExit(f"{run}: no summary.json (not a finished nasfer search; run the same command to resume it)")
    summary = json.loads(summary_path.read_text())
    rows = [json.loads(line) for line in (run / "search_log.jsonl").read_text().splitlines() if line.strip()]
    children = [r for r in rows if r.get("kind") == "child"]
    rewards = [r["reward"] for r in children]
    entropies = [r["entropy"] for r in children if r.get("entropy") is not None]
    quarters = [rewards[i * len(rewards) // 4:(i + 1) * len(rewards) // 4] for i in range(4)]
    cfg = summary["config"]
    best = summary["best"]
    return {
        "run": str(run), "space": summary["space"], "strategy": summary["strategy"], "seed": cfg["seed"],
        "children": summary["children"], "children_per_rung": summary["children_per_rung"], "rungs": summary["rungs"],
        "minutes": summary["elapsed_s"] / 60,
        # measured process CPU time; searches without it (older, or on Ray): elapsed x threads
        "cpu_hours": (summary["cpu_s"] if summary.get("cpu_s") is not None
                      else summary["elapsed_s"] * max(1, cfg["threads"])) / 3600,
        "reward_mean_by_quarter": [statistics.fmean(q) if q else None for q in quarters],
        "best_rung0_reward": max(rewards) if rewards else None,
        "early_children": early, "mean_reward_first_early": mean(rewards[:early]),
        "mean_reward_after_early": mean(rewards[early:]),
        "entropy_first": entropies[0] if entropies else None, "entropy_last": entropies[-1] if entropies else None,
        "rewards": rewards,
        "entropy_by_quarter": _entropy(rows),
        # None: the search trained no child (summary.json says why under no_winner)
        "best": None if best is None else {k: best[k] for k in ("child", "fidelity", "accuracy", "objective")}
        | {"ms_per_face_b1": (best["latency"] or {}).get("ms_per_face_b1"),
           "ms_per_face_b64": (best["latency"] or {}).get("ms_per_face_b64"),
           "params": (best["latency"] or {}).get("params"), "spec": best["spec"]},
    }


def _entropy(rows: list[dict]) -> list[float | None]:
    values = [r["entropy"] for r in rows if r.get("kind") == "child" and "entropy" in r]
    qs = [values[i * len(values) // 4:(i + 1) * len(values) // 4] for i in range(4)]
    return [statistics.fmean(q) if q else None for q in qs]


def retrained(run: Path) -> dict:
    history = json.loads((run / "history.json").read_text())
    config = json.loads((run / "config.json").read_text())
    return {"run": str(run), "epochs": len(history),
            "best_val_accuracy": max(max(h["val_acc"], h.get("val_acc_ema", 0.0)) for h in history),
            "train": config.get("train", {})}


def _stats(values: list[float]) -> dict:
    values = [v for v in values if v is not None]
    if not values:
        return {"n": 0}
    return {"n": len(values), "mean": statistics.fmean(values),
            "sd": statistics.stdev(values) if len(values) > 1 else None, "values": values}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("runs", nargs="+", type=Path, help="search directories")
    parser.add_argument("--retrained", nargs="*", default=[], help="SEARCH_DIR=RETRAIN_RUN_DIR")
    parser.add_argument("--evaluation", nargs="*", default=[], help="SEARCH_DIR=nasfer evaluate --json report")
    parser.add_argument("--early", type=int, default=15, help="children counted as the start of a run")
    parser.add_argument("--out", default="benchmarks/results/search_compare.json")
    args = parser.parse_args()
    retrains, evaluations = _pairs(args.retrained, "--retrained"), _pairs(args.evaluation, "--evaluation")
    runs = []
    for path in args.runs:
        row = summarize(path, args.early)
        if str(path) in retrains:
            row["retrained"] = retrained(retrains[str(path)])
        if str(path) in evaluations:
            report = json.loads(evaluations[str(path)].read_text())
            row["publictest"] = {"accuracy": report["accuracy"], "macro_f1": report["macro_f1"],
                                 "report": str(evaluations[str(path)])}
        runs.append(row)
    strategies = {}
    for name in sorted({r["strategy"] for r in runs}):
        mine = [r for r in runs if r["strategy"] == name]
        strategies[name] = {
            "seeds": [r["seed"] for r in mine],
            "best_search_accuracy": _stats([r["best"]["accuracy"] for r in mine if r["best"]]),
            "retrained_val_accuracy": _stats([r.get("retrained", {}).get("best_val_accuracy") for r in mine]),
            "publictest_accuracy": _stats([r.get("publictest", {}).get("accuracy") for r in mine]),
            "publictest_macro_f1": _stats([r.get("publictest", {}).get("macro_f1") for r in mine]),
            "ms_per_face_b1": _stats([r["best"]["ms_per_face_b1"] for r in mine if r["best"]]),
            "cpu_hours": _stats([r["cpu_hours"] for r in mine]),
        }
    for r in runs:
        q = ", ".join(f"{x:.3f}" for x in r["reward_mean_by_quarter"] if x is not None)
        extra = f"  retrained val {r['retrained']['best_val_accuracy']:.4f}" if "retrained" in r else ""
        print(f"{r['run']:32s} {r['strategy']:10s} seed {r['seed']}  {r['children']:4d} children  "
              f"reward by quarter [{q}]  best {r['best']['accuracy']:.4f} at {r['best']['fidelity']}{extra}")
    comparison = [{"a": runs[0]["run"], "b": other["run"], "welch": welch_t(runs[0]["rewards"], other["rewards"])}
                  for other in runs[1:]]
    write_result({"benchmark": "search_compare", "runs": runs, "strategies": strategies, "comparison": comparison},
                 args.out)


if __name__ == "__main__":
    main()
