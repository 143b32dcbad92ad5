"""Statistics and tables of the proxy calibration (benchmarks/proxy_calibration.py): Kendall's tau-b with a
bootstrap CI over architectures, tau within the reference's top half, top-1 regret, the noise ceiling from
models trained twice, the choice of proxy, and the README's markdown. Pure functions over the result dicts.
"""

from __future__ import annotations

import math

import numpy as np

#: A proxy is chosen only once its tau covers this many architectures (tau over 2-3 points is +-1 by chance).
MIN_FOR_CHOICE = 8

def kendall(x, y) -> float:
    from scipy.stats import kendalltau

    if len(x) < 2 or len(set(x)) < 2 or len(set(y)) < 2:
        return float("nan")
    return float(kendalltau(x, y).statistic)


def bootstrap_ci(x, y, n: int, seed: int = 0) -> list[float] | None:
    x, y = np.asarray(x, float), np.asarray(y, float)
    if len(x) < 4:
        return None
    rng = np.random.default_rng(seed)
    taus = [kendall(x[i], y[i]) for i in (rng.integers(0, len(x), len(x)) for _ in range(n))]
    taus = [t for t in taus if not math.isnan(t)]
    return [float(np.percentile(taus, 2.5)), float(np.percentile(taus, 97.5))] if taus else None


def score_proxy(values: list[float], ref: list[float], n_boot: int) -> dict:
    ref_a, val_a = np.asarray(ref), np.asarray(values)
    top = ref_a >= np.median(ref_a)
    return {"n": len(ref), "kendall_tau": kendall(values, ref), "tau_ci95": bootstrap_ci(values, ref, n_boot),
            "tau_top_half": kendall(val_a[top].tolist(), ref_a[top].tolist()),
            "top1_regret": float(ref_a.max() - ref_a[int(np.argmax(val_a))]) if len(ref) else None}


def analyse(models: list[dict], args) -> dict:
    have = [m for m in models if m.get("reference", {}).get("0") is not None]
    ref = [m["reference"]["0"] for m in have]
    proxies = {}
    for name in args.proxies:
        rows = [(m["proxies"][name]["accuracy"], m["reference"]["0"], m["proxies"][name]["seconds"])
                for m in have if name in m.get("proxies", {})]
        stats = score_proxy([r[0] for r in rows], [r[1] for r in rows], args.bootstrap)
        stats["mean_seconds"] = float(np.mean([r[2] for r in rows])) if rows else None
        proxies[name] = stats
    for name in ("params", "flops"):
        proxies[f"training-free: {name}"] = {**score_proxy([float(m[name]) for m in have], ref, args.bootstrap),
                                             "mean_seconds": 0.0}
    pairs = [(m["reference"]["0"], m["reference"]["1"]) for m in have if m.get("reference", {}).get("1") is not None]
    noise = {"n": len(pairs)}
    if pairs:
        d = np.array([b - a for a, b in pairs])
        sd = float(np.sqrt(np.mean(d ** 2) / 2))
        rng = np.random.default_rng(1)
        r = np.asarray(ref)
        sims = [kendall((r + rng.normal(0, sd, len(r))).tolist(), (r + rng.normal(0, sd, len(r))).tolist())
                for _ in range(args.bootstrap)] if len(r) >= 2 else []
        sims = [t for t in sims if not math.isnan(t)]
        noise.update({"seed_sd": sd, "abs_diffs": [abs(float(x)) for x in d],
                      "tau_seed0_vs_seed1": kendall([a for a, _ in pairs], [b for _, b in pairs]),
                      "tau_ceiling_simulated": float(np.mean(sims)) if sims else None,
                      "how": "seed_sd = sqrt(mean(diff^2) / 2) over the models trained twice; the ceiling is the "
                             "mean tau between two noisy copies of the reference (sd = seed_sd) over all models"})
    ok = [(v["mean_seconds"], k) for k, v in proxies.items() if not k.startswith("training-free")
          and v["kendall_tau"] == v["kendall_tau"] and v["kendall_tau"] >= 0.6 and v["mean_seconds"] is not None
          and v["n"] >= MIN_FOR_CHOICE]
    return {"proxies": proxies, "noise_ceiling": noise, "cheapest_proxy_with_tau_0_6": min(ok)[1] if ok else None,
            "choice_needs_architectures": MIN_FOR_CHOICE}


def markdown(result: dict) -> str:
    """The README's tables for a results dict: one row per proxy, then one per architecture."""
    def num(v, spec=".2f"):
        return "" if v is None or v != v else format(v, spec)

    lines = [f"Status: {result['status']} ({result['date']}).", "",
             "| proxy | architectures | Kendall tau | 95% CI | tau, top half | top-1 regret (points) | seconds each |",
             "|---|---:|---:|---:|---:|---:|---:|"]
    for name, v in result["proxies"].items():
        ci = v.get("tau_ci95")
        lines.append(f"| {name} | {v['n']} | {num(v['kendall_tau'])} | {f'{ci[0]:.2f} to {ci[1]:.2f}' if ci else ''} | "
                     f"{num(v['tau_top_half'])} | {num(v['top1_regret'] and 100 * v['top1_regret'], '.1f')} | "
                     f"{num(v.get('mean_seconds'), '.0f')} |")
    noise = result.get("noise_ceiling", {})
    lines += ["", f"Noise ceiling: {noise.get('n', 0)} architectures trained with a second seed"
              + (f"; seed-to-seed sd {100 * noise['seed_sd']:.2f} points, simulated tau ceiling "
                 f"{num(noise.get('tau_ceiling_simulated'))}" if noise.get("seed_sd") is not None else "") + ". "
              f"Cheapest proxy with tau >= 0.6 over at least {result.get('choice_needs_architectures', MIN_FOR_CHOICE)} "
              f"architectures: {result.get('cheapest_proxy_with_tau_0_6') or 'none (yet)'}.", "",
              "| architecture | params | multiply-adds | ms per face | reference val acc (seed 0 / 1) | "
              + " | ".join(next(iter(result["proxies"].values()), {}) and
                           [k for k in result["proxies"] if not k.startswith("training-free")]) + " |",
              "|---|---:|---:|---:|---:|" + "---:|" * sum(not k.startswith("training-free") for k in result["proxies"])]
    for m in result["models"]:
        ref = m.get("reference") or {}
        refs = " / ".join(num(ref.get(k), ".4f") for k in ("0", "1") if ref.get(k) is not None)
        proxies = [num((m.get("proxies") or {}).get(k, {}).get("accuracy"), ".4f")
                   for k in result["proxies"] if not k.startswith("training-free")]
        lines.append(f"| {m['id']} | {m['params']:,} | {m['flops'] / 1e6:.1f} M | "
                     f"{m['latency']['ms_per_face_b1']:.3f} | {refs} | " + " | ".join(proxies) + " |")
    return "\n".join(lines)
