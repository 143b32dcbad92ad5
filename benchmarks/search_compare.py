"""Compare search runs (e.g. REINFORCE vs the random control) from their logs, as JSON.

For each run directory: number of children scored, mean reward overall and per quarter of the run
(a learning controller's later quarters rise above its first; random's do not), best reward, and the
re-scored best genotype from summary.json when the run finished. Usage:

    python benchmarks/search_compare.py runs/search-reinforce runs/search-random \
        [--out benchmarks/results/search_compare.json]
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from common import write_result


def summarize(run: Path) -> dict:
    rows = [json.loads(line) for line in (run / "search_log.jsonl").read_text().splitlines() if line.strip()]
    rewards = [r["reward"] for r in rows if r.get("kind") == "controller"]
    quarters = [rewards[i * len(rewards) // 4:(i + 1) * len(rewards) // 4] for i in range(4)]
    out = {
        "run": run.name,
        "strategy": json.loads((run / "config.json").read_text()).get("strategy") if (run / "config.json").exists() else None,
        "children": len(rewards),
        "mean_reward": sum(rewards) / len(rewards) if rewards else None,
        "mean_reward_by_quarter": [sum(q) / len(q) if q else None for q in quarters],
        "best_reward": max(rewards) if rewards else None,
        "minutes": rows[-1]["elapsed"] / 60 if rows else 0.0,
    }
    summary = run / "summary.json"
    if summary.exists():
        data = json.loads(summary.read_text())
        out["summary"] = {k: data[k] for k in data if k not in ("log",)}
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("runs", nargs="+", type=Path)
    parser.add_argument("--out", default="benchmarks/results/search_compare.json")
    args = parser.parse_args()
    result = {"benchmark": "search_compare", "runs": [summarize(r) for r in args.runs]}
    for r in result["runs"]:
        quarters = ", ".join(f"{q:.3f}" for q in r["mean_reward_by_quarter"] if q is not None)
        print(f"{r['run']:24s} {r['children']:4d} children  mean reward {r['mean_reward']:.3f}  "
              f"by quarter [{quarters}]  best {r['best_reward']:.3f}")
    write_result(result, args.out)


if __name__ == "__main__":
    main()
