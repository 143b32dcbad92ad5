"""Compare search runs (e.g. REINFORCE vs the random control) from their logs, as JSON.

For each run directory: number of children scored, mean reward overall and per quarter of the run
(a learning controller's later quarters rise above its first; random's do not), mean reward of the
first `--early` children and of the rest, the policy's entropy (nats) at the first and last step, best
reward, and the re-scored best genotype from summary.json when the run finished. With two or more runs,
`comparison` holds Welch's t-test of the first run's children's rewards against each other run's
(Welch 1947: unequal variances; t, Welch-Satterthwaite degrees of freedom, two-sided p). Usage:

    python benchmarks/search_compare.py runs/search-reinforce runs/search-random \
        [--out benchmarks/results/search_compare.json]
"""

from __future__ import annotations

import argparse
import json
import math
from pathlib import Path
from typing import Sequence

from common import write_result


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
    rows = [json.loads(line) for line in (run / "search_log.jsonl").read_text().splitlines() if line.strip()]
    steps = [r for r in rows if r.get("kind") == "controller"]
    rewards = [r["reward"] for r in steps]
    entropies = [r["entropy"] for r in steps if r.get("entropy") is not None]
    quarters = [rewards[i * len(rewards) // 4:(i + 1) * len(rewards) // 4] for i in range(4)]
    out = {
        "run": run.name,
        "strategy": json.loads((run / "config.json").read_text()).get("strategy") if (run / "config.json").exists() else None,
        "children": len(rewards),
        "mean_reward": sum(rewards) / len(rewards) if rewards else None,
        "mean_reward_by_quarter": [sum(q) / len(q) if q else None for q in quarters],
        "best_reward": max(rewards) if rewards else None,
        "early_children": early,
        "mean_reward_first_early": mean(rewards[:early]),
        "mean_reward_after_early": mean(rewards[early:]),
        "entropy_first": entropies[0] if entropies else None,
        "entropy_last": entropies[-1] if entropies else None,
        "rewards": rewards,
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
    parser.add_argument("--early", type=int, default=15, help="children counted as the start of a run")
    parser.add_argument("--out", default="benchmarks/results/search_compare.json")
    args = parser.parse_args()
    result = {"benchmark": "search_compare", "runs": [summarize(r, args.early) for r in args.runs]}
    first = result["runs"][0]
    result["comparison"] = [{"a": first["run"], "b": other["run"], "welch": welch_t(first["rewards"], other["rewards"])}
                            for other in result["runs"][1:]]
    for r in result["runs"]:
        quarters = ", ".join(f"{q:.3f}" for q in r["mean_reward_by_quarter"] if q is not None)
        print(f"{r['run']:24s} {r['children']:4d} children  mean reward {r['mean_reward']:.3f}  "
              f"by quarter [{quarters}]  best {r['best_reward']:.3f}")
    write_result(result, args.out)


if __name__ == "__main__":
    main()
