"""The end of a search: ranking, the Pareto archive (accuracy vs ms per face), and the files written.

- ranking: children by the highest rung they reached, then by their objective there (scores are
  only compared within a rung, as successive halving defines them); every child trained at rung 0 is
  ranked, whenever in the search it appeared (a child skipped for latency or whose training failed never
  is: with no trained child there is no winner, `finish` says why and writes no `best_arch.json`);
- `pareto_front(points)`: the non-dominated (accuracy up, latency down) subset, per rung;
- files in the search directory: `best_arch.json` (the winner's spec, for `nasfer train --genotype`;
  for the nasnet space also `best_genotype.json` and cell diagrams), `pareto.json` and `pareto.png`,
  `summary.json` (top-k children, settings, timing, notes, and `train_command`: the `nasfer train` line that
  builds the winner at the size it was searched at).
"""

from __future__ import annotations

import json
import shlex
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Sequence

from ..atomic import write_text_atomic
from ..config import to_dict


@dataclass
class SearchResult:
    out: Path
    best: dict[str, Any]  # the winning child: id, key, spec, scores, latency
    summary: dict[str, Any]


def rung_calibration(path: str, rungs: list[str]) -> dict[str, Any] | None:
    """{"file", "status", "rungs": {fidelity: {"kendall_tau", "tau_ci95", "n"}}} for the search's rungs from a
    proxy calibration JSON (None without one); ModelError when the file cannot be read."""
    if not path:
        return None
    from ..errors import ModelError

    try:
        result = json.loads(Path(path).read_text())
        proxies = result["proxies"]
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise ModelError(f"{path}: not a proxy calibration result ({type(exc).__name__}: {exc})") from None
    return {"file": Path(path).name, "status": result.get("status"),
            "rungs": {r: {k: proxies[r].get(k) for k in ("kendall_tau", "tau_ci95", "n")} if r in proxies else None
                      for r in rungs}}


def pareto_front(points: Sequence[dict[str, Any]], acc: str = "accuracy", cost: str = "ms_per_face") -> list[dict[str, Any]]:
    """Points no other point beats on both accuracy (higher) and cost (lower), by ascending cost."""
    ordered = sorted(points, key=lambda p: (p[cost], -p[acc]))
    front, best = [], float("-inf")
    for p in ordered:
        if p[acc] > best:
            front.append(p)
            best = p[acc]
    return front


def ranking(run) -> list[dict[str, Any]]:
    """Every trained child, best first: (highest rung reached, objective at that rung), ties by earlier child.
    Children not trained (skipped for --max-latency-ms) or whose training failed are left out."""
    rows = []
    for trial in run.trials.values():
        first = trial["scores"].get("0", {})
        if not trial["scores"] or first.get("failed") or first.get("infeasible"):
            continue  # never trained (too slow) or its training / export failed: no accuracy to rank
        rung = max(int(r) for r in trial["scores"])
        rows.append((rung, trial["scores"][str(rung)]["objective"], -trial["id"], trial))
    rows.sort(key=lambda r: (r[0], r[1], r[2]), reverse=True)
    return [r[3] for r in rows]


def pareto_archive(run) -> dict[str, Any]:
    batch = run.cfg.latency_batch
    rungs = []
    for rung, fidelity in enumerate(run.fidelities):
        points = [{"child": t["id"], "accuracy": t["scores"][str(rung)]["accuracy"],
                   "ms_per_face": t["latency"][f"ms_per_face_b{batch}"], "params": t["latency"].get("params"),
                   "key": t["key"]}
                  for t in run.trials.values()
                  if str(rung) in t["scores"] and t["latency"]
                  and not t["scores"][str(rung)].get("infeasible") and not t["scores"][str(rung)].get("failed")]
        rungs.append({"rung": rung, "fidelity": fidelity.name, "points": points, "front": pareto_front(points)})
    return {"latency": f"ms per face at batch {batch}, exported ONNX graph in ONNX Runtime CPU, 1 intra-op thread",
            "accuracy": "validation accuracy at the rung's fidelity", "rungs": rungs}


def plot_pareto(archive: dict[str, Any], path: Path) -> bool:
    """Scatter of every child per rung with its front; False when matplotlib is missing."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return False
    fig, ax = plt.subplots(figsize=(6.4, 4.4))
    for rung in archive["rungs"]:
        if not rung["points"]:
            continue
        xs = [p["ms_per_face"] for p in rung["points"]]
        ys = [p["accuracy"] for p in rung["points"]]
        dots = ax.scatter(xs, ys, s=14, alpha=0.45, label=f"rung {rung['rung']}: {rung['fidelity']}")
        front = rung["front"]
        ax.plot([p["ms_per_face"] for p in front], [p["accuracy"] for p in front], "-", color=dots.get_facecolor()[0],
                alpha=1.0, linewidth=1.2, drawstyle="steps-post")
    ax.set_xscale("log")
    ax.set_xlabel("ms per face (ONNX Runtime CPU, 1 thread)")
    ax.set_ylabel("validation accuracy at the rung's fidelity")
    ax.set_title("Pareto archive of the search")
    ax.grid(alpha=0.3)
    if any(rung["points"] for rung in archive["rungs"]):
        ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return True


def train_command(cfg, out: Path) -> str:
    """The `nasfer train` line that retrains the winner of the search `cfg` in `out` at the size it was searched
    at: for the nasnet space, --width F --cells N (best_arch.json holds the cells, not the network's size)."""
    size = ["--width", str(cfg.F), "--cells", str(cfg.N)] if cfg.space == "nasnet" else []
    return shlex.join(["nasfer", "train", "--data", cfg.data or "DATA", "--genotype", str(Path(out) / "best_arch.json"),
                       *size, "--out", "runs/searched"])


def job_line(record: dict[str, Any], latency: dict[str, Any] | None, cfg, folder: str, budget_s: float) -> str:
    """The progress line of one finished job (`record`, as in search_log.jsonl) of the search `cfg` in `folder`:
    the folder's name first (searches side by side in a retraining campaign share one log), the child, its
    accuracy and ms per face, or why it was not trained, and the minutes spent of the budget (`budget_s`)."""
    batch = cfg.latency_batch
    ms = (latency or {}).get(f"ms_per_face_b{batch}")
    what = (f"{folder} job {record['job']}: child {record['child']}"
            + (" promoted" if record["kind"] == "promotion" else "")
            + ("" if record.get("infeasible") else f" at {record['fidelity']}"))
    if record.get("failed"):
        result = "failed: " + " ".join(str(record["failed"]).split())[:160]
    elif record.get("infeasible"):
        result = f"{ms:.3f} ms/face (batch {batch}) > --max-latency-ms {cfg.max_latency_ms:g}: not trained"
    else:
        result = f"accuracy {record['accuracy']:.4f}" + (f", {ms:.3f} ms/face (batch {batch})" if ms is not None
                                                         else "")
    return f"{what}: {result}; {record['elapsed'] / 60:.1f}/{budget_s / 60:.1f} min"


def bar_accuracy(record: dict[str, Any]) -> str:
    """The progress bar's accuracy for a finished job: 3 decimals, or why there is none (skipped, failed)."""
    if record.get("infeasible"):
        return "skipped (latency)"
    if record.get("failed"):
        return "failed"
    accuracy = record.get("accuracy")
    return "-" if accuracy is None else f"{accuracy:.3f}"


def no_winner(run) -> str:
    """Why a search whose children were all skipped or failed has no winner, and what to change."""
    infeasible = [t for t in run.trials.values() if t["scores"].get("0", {}).get("infeasible")]
    failed = sum(1 for t in run.trials.values() if t["scores"].get("0", {}).get("failed"))
    reasons = []
    if infeasible:
        batch = run.cfg.latency_batch
        fastest = min(t["latency"][f"ms_per_face_b{batch}"] for t in infeasible)
        reasons.append(f"{len(infeasible)} were slower than --max-latency-ms {run.cfg.max_latency_ms:g} (the fastest "
                       f"{fastest:.3f} ms per face at batch {batch}) and not trained")
    if failed:
        reasons.append(f"{failed} failed to train (see {run.out / 'search_log.jsonl'})")
    fix = ("raise --max-latency-ms (0: no limit) and search in a new --out" if infeasible
           else "fix the cause and search in a new --out")
    return (f"no child was trained, so there is no winner and no best_arch.json: of {len(run.trials)} children, "
            f"{' and '.join(reasons)}; {fix} ({run.out / 'summary.json'} keeps what was measured)")


def finish(run) -> SearchResult:
    """Write the result files of `run` (a `SearchRun`). ValueError when no child was scored, or when none was
    trained (all skipped for latency or failed: summary.json and pareto.json are written, with no winner and no
    best_arch.json, and the message says what to change)."""
    if not run.trials:
        raise ValueError("the budget ended before the first child was scored: give a larger --budget-minutes")
    ranked = ranking(run)
    archive = pareto_archive(run)
    (run.out / "pareto.json").write_text(json.dumps(archive, indent=1) + "\n")
    plotted = plot_pareto(archive, run.out / "pareto.png") if ranked else True
    best = ranked[0] if ranked else None
    rung = max(int(r) for r in best["scores"]) if best else None
    top = [{"child": t["id"], "key": t["key"], "rung": max(int(r) for r in t["scores"]),
            "scores": {run.fidelities[int(r)].name: s for r, s in sorted(t["scores"].items())},
            "latency": t["latency"], "spec": t["spec"]} for t in ranked[: run.cfg.top_k]]
    by_rung = [len(run.scheduler.scores(r)) for r in range(len(run.fidelities))]
    rewards = [t["scores"]["0"]["objective"] for t in sorted(run.trials.values(), key=lambda t: t["id"])
               if "0" in t["scores"]]
    quarter = max(1, len(rewards) // 4)
    summary = {
        "space": run.cfg.space, "strategy": run.cfg.strategy,
        "best": None if best is None else {
            "child": best["id"], "rung": rung, "fidelity": run.fidelities[rung].name,
            "accuracy": best["scores"][str(rung)]["accuracy"], "objective": best["scores"][str(rung)]["objective"],
            "latency": best["latency"], "spec": best["spec"]},
        "train_command": None if best is None else train_command(run.cfg, run.out),
        "children": len(run.trials), "children_per_rung": by_rung,
        "infeasible": sum(1 for t in run.trials.values() if t["scores"].get("0", {}).get("infeasible")),
        "failed": sum(1 for t in run.trials.values() if t["scores"].get("0", {}).get("failed") or t.get("failed")),
        "duplicates": run.duplicates, "jobs": run.jobs,
        "elapsed_s": round(run.loop_elapsed, 1), "budget_s": run.budget_s,
        "cpu_s": None if run.loop_cpu is None else round(run.loop_cpu, 1),  # None on Ray (trials run elsewhere)
        "reward_mean_first_quarter": sum(rewards[:quarter]) / len(rewards[:quarter]),
        "reward_mean_last_quarter": sum(rewards[-quarter:]) / len(rewards[-quarter:]),
        "objective": "validation accuracy" + (f" * (ms per face at batch {run.cfg.latency_batch} / "
                                              f"{run.cfg.latency_target_ms}) ** {run.cfg.latency_w}"
                                              if run.cfg.latency_target_ms > 0 else ""),
        "rungs": [f.name for f in run.fidelities], "eta": run.cfg.eta,
        "n_train": run.n_train, "n_val": run.n_val, "top_k": top, "config": to_dict(run.cfg),
        "notes": run.notes + ([] if plotted else ["matplotlib not installed: no pareto.png"]),
    }
    if best is None:
        reason = no_winner(run)
        summary["no_winner"] = reason
        write_text_atomic(run.out / "summary.json", json.dumps(summary, indent=1) + "\n")
        raise ValueError(reason)
    calibration = rung_calibration(run.cfg.calibration, summary["rungs"])
    if calibration:
        summary["proxy_calibration"] = calibration
        first, reward = calibration["rungs"].get(summary["rungs"][0]), summary["rungs"][0]
        tau = (first or {}).get("kendall_tau")
        if tau is None or tau != tau:
            summary["notes"].append(f"the reward's fidelity {reward} is not calibrated in {calibration['file']}: "
                                    "how well it ranks children is unknown")
        elif tau < 0.6:
            summary["notes"].append(f"the reward's fidelity {reward} has Kendall tau {tau:.2f} with full training "
                                    f"({calibration['file']}), below 0.6: its ranking of children is not to be trusted")
    meta = {"search": {k: summary["best"][k] for k in ("fidelity", "accuracy", "objective", "latency")}
            | {"space": run.cfg.space, "strategy": run.cfg.strategy, "seed": run.cfg.seed, "rungs": summary["rungs"],
               "reward_fidelity": summary["rungs"][0], "run": str(run.out),
               **({"proxy_calibration": calibration} if calibration else {})}}
    (run.out / "best_arch.json").write_text(json.dumps({**best["spec"], **meta}, indent=1) + "\n")
    if run.cfg.space == "nasnet":
        from .genotype import Genotype

        genotype = Genotype.from_dict(best["spec"])
        genotype.save(run.out / "best_genotype.json", **meta)
        try:
            from .plots import plot_genotype

            plot_genotype(genotype, run.out, prefix="best_")
        except ImportError:
            summary["notes"].append("matplotlib not installed: no cell diagrams drawn")
    write_text_atomic(run.out / "summary.json", json.dumps(summary, indent=1) + "\n")
    return SearchResult(out=run.out, best=best, summary=summary)
