"""What benchmarks/retrain.py reports: one row per job read from its directory, per-group statistics, the
best job by validation accuracy, the search winner the fast model is trained from, and the markdown tables.

Pure functions of the files a campaign leaves in its job directories (so a re-run, or `--table`, gives the
same figures): `history.json` (training), `model.json` / `model-int8.json` (model cards: parameters,
multiply-adds, int8 parity), `eval-<fp32|int8>-<split>.json` (`nasfer evaluate` reports),
`speed-<fp32|int8>.json` and a search's `summary.json` (read by search_compare.summarize).
"""

from __future__ import annotations

import json
import os
import platform
import time
from pathlib import Path
from typing import Any

from common import cpu_model
from search_compare import _stats, retrained, summarize

FP32_ONNX, INT8_ONNX = "model.onnx", "model-int8.onnx"
INT8_REFUSED = "int8-refused.json"
VARIANTS = {"fp32": FP32_ONNX, "int8": INT8_ONNX}
#: Per-model figures; the first is the one any choice is made on.
MODEL_METRICS = ("val_accuracy", "test_accuracy", "test_macro_f1", "ms_per_face_b1", "faces_per_s_b64")
GROUP_METRICS = MODEL_METRICS + ("val_accuracy_training", "params", "multiply_adds", "search_cpu_hours")


def eval_file(variant: str, split: str) -> str:
    """File name of a cached `nasfer evaluate` report: variant fp32/int8, split val or the test split."""
    return f"eval-{variant}-{split}.json"


def speed_file(variant: str) -> str:
    return f"speed-{variant}.json"


def read_json(path: Path) -> Any:
    """The JSON in `path`; None when the file does not exist (yet) or is cut short (a run killed while writing
    a file nasfer does not write atomically: the step that makes it is then simply done again)."""
    try:
        return json.loads(path.read_text())
    except (FileNotFoundError, json.JSONDecodeError, UnicodeDecodeError):
        return None


def write_text(path: Path, text: str) -> None:
    """Write atomically (nasfer.atomic): a kill never leaves half a file that looks finished."""
    from nasfer.atomic import write_text_atomic

    path.parent.mkdir(parents=True, exist_ok=True)
    write_text_atomic(path, text)


def write_json(path: Path, value: Any) -> None:
    write_text(path, json.dumps(value, indent=1) + "\n")


def model_figures(job_dir: Path, variant: str, test_split: str) -> dict[str, Any]:
    """Validation and test accuracy / macro-F1 and speed of one exported model of a job (None where not measured)."""
    val = read_json(job_dir / eval_file(variant, "val")) or {}
    test = read_json(job_dir / eval_file(variant, test_split)) or {}
    speed = read_json(job_dir / speed_file(variant)) or {}
    return {"val_accuracy": val.get("accuracy"), "val_macro_f1": val.get("macro_f1"), "n_val": val.get("n"),
            "test_accuracy": test.get("accuracy"), "test_macro_f1": test.get("macro_f1"), "n_test": test.get("n"),
            "ms_per_face_b1": speed.get("ms_per_face_b1"), "faces_per_s_b64": speed.get("faces_per_s_b64"),
            "speed": speed or None}


def job_row(spec: dict[str, Any], test_split: str) -> dict[str, Any]:
    """One job's row: `spec` (name, kind, group, seed, commands, directories) plus what its files hold."""
    job_dir = Path(spec["dir"])
    row: dict[str, Any] = dict(spec)
    row["test_split"] = test_split
    if read_json(job_dir / "history.json") and read_json(job_dir / "config.json"):
        trained = retrained(job_dir)
        row["val_accuracy_training"], row["epochs_done"] = trained["best_val_accuracy"], trained["epochs"]
    card = read_json(job_dir / "model.json")
    if card:
        arch = card.get("architecture") or {}
        row.update(params=arch.get("params"), multiply_adds=arch.get("flops"), architecture=arch.get("name"),
                   onnx=str(job_dir / FP32_ONNX), onnx_mb=round((job_dir / FP32_ONNX).stat().st_size / 2**20, 3))
    row.update(model_figures(job_dir, "fp32", test_split))
    refused = read_json(job_dir / INT8_REFUSED)
    int8_card = read_json(job_dir / "model-int8.json")
    if refused:
        row["int8"] = refused
    elif int8_card:
        row["int8"] = {"onnx": str(job_dir / INT8_ONNX), "onnx_mb": round((job_dir / INT8_ONNX).stat().st_size / 2**20, 3),
                       "parity": (int8_card.get("quantization") or {}).get("parity"),
                       **model_figures(job_dir, "int8", test_split)}
    search_dir = spec.get("search_dir")
    if search_dir and read_json(Path(search_dir) / "summary.json"):
        s = summarize(Path(search_dir))
        row["search"] = {k: s[k] for k in ("children", "children_per_rung", "minutes", "cpu_hours",
                                           "reward_mean_by_quarter", "entropy_first", "entropy_last")}
        row["search"]["best"] = s["best"] and {k: s["best"][k] for k in ("child", "fidelity", "accuracy", "objective",
                                                                          "ms_per_face_b1", "params")}
        row["search_cpu_hours"] = s["cpu_hours"]
    return row


def groups(rows: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    """Per group (a strategy's search winners, a control, a given architecture), in order of appearance:
    kind, jobs, seeds and mean / sd / n of every metric over the jobs that have it (int8 figures apart)."""
    out: dict[str, dict[str, Any]] = {}
    for name in dict.fromkeys(r["group"] for r in rows):
        members = [r for r in rows if r["group"] == name]
        entry = {"kind": members[0]["kind"], "jobs": [r["name"] for r in members], "seeds": [r["seed"] for r in members],
                 **{m: _stats([r.get(m) for r in members]) for m in GROUP_METRICS}}
        int8 = [r["int8"] for r in members if r.get("int8") and "refused" not in r["int8"]]
        refused = [r["name"] for r in members if (r.get("int8") or {}).get("refused")]
        if int8 or refused:
            entry["int8"] = {**{m: _stats([q.get(m) for q in int8]) for m in MODEL_METRICS}, "refused": refused}
        out[name] = entry
    return out


def best_job(rows: list[dict[str, Any]]) -> dict[str, Any] | None:
    """The job with the highest validation accuracy (never chosen on the test split); None before any."""
    scored = [r for r in rows if r.get("val_accuracy") is not None]
    if not scored:
        return None
    best = max(scored, key=lambda r: r["val_accuracy"])
    return {"job": best["name"], "group": best["group"], "val_accuracy": best["val_accuracy"],
            "onnx": best.get("onnx"), "genotype": best.get("genotype"), "arch": best.get("arch"),
            "width": best.get("width"), "cells": best.get("cells"), "train_command": best.get("train_command")}



#: The fast model's rule (issue 12), fixed before any campaign's timings were read: the search winner with the
#: highest validation accuracy among those no slower at batch 1 than this control group's mean, plus the slack
#: (timing noise between runs of one model is a few per cent).
FAST_REFERENCE, LATENCY_SLACK = "vgg16", 0.05


def fast_choice(rows: list[dict[str, Any]], reference: str = FAST_REFERENCE,
                slack: float = LATENCY_SLACK) -> dict[str, Any] | None:
    """Which search winner the fast model is trained from: among search winners whose fp32 ms per face
    (batch 1, 1 thread) is at most the `reference` group's mean x (1 + slack), the highest validation accuracy
    (a tie goes to the faster); `beats_reference` says whether it beats the reference's best seed on validation
    (the test split is never read).

    None for a campaign without search winners or without a `reference` group. Otherwise `job` is None until
    every winner and reference job is scored and timed (`waiting` names the rest), when they were timed on
    different CPUs (`cpus`; `--remeasure-speed` times them again on one), or when no winner is fast enough.
    """
    winners = [r for r in rows if r["kind"] == "search-winner"]
    ref = [r for r in rows if r["group"] == reference]
    if not winners or not ref:
        return None
    waiting = [r["name"] for r in ref + winners
               if r.get("ms_per_face_b1") is None or r.get("val_accuracy") is None]
    cpus = sorted({(r.get("speed") or {}).get("cpu") for r in ref + winners} - {None})
    out: dict[str, Any] = {"reference": reference, "slack": slack, "waiting": waiting, "cpus": cpus,
                           "max_ms_per_face_b1": None, "reference_val_accuracy": None, "candidates": [],
                           "job": None, "val_accuracy": None, "ms_per_face_b1": None, "genotype": None,
                           "beats_reference": None}
    if waiting or len(cpus) > 1:
        return out
    ceiling = sum(r["ms_per_face_b1"] for r in ref) / len(ref) * (1.0 + slack)
    ref_val = max(r["val_accuracy"] for r in ref)
    fast = [r for r in winners if r["ms_per_face_b1"] <= ceiling]
    out.update(max_ms_per_face_b1=ceiling, reference_val_accuracy=ref_val, candidates=[r["name"] for r in fast])
    if fast:
        pick = max(fast, key=lambda r: (r["val_accuracy"], -r["ms_per_face_b1"]))
        out.update(job=pick["name"], val_accuracy=pick["val_accuracy"], ms_per_face_b1=pick["ms_per_face_b1"],
                   genotype=pick.get("genotype"), beats_reference=pick["val_accuracy"] > ref_val)
    return out


def pareto_rows(result: dict[str, Any]) -> list[dict[str, Any]]:
    """The rows `benchmarks/pareto.plot_pareto` draws: per job of a campaign result, its fp32 model and (with
    --quantize) its int8 model (named "JOB int8"), each with its test-split accuracy (fraction) and ms per face
    (batch 1, 1 thread); models missing either figure (unscored, untimed, int8 refused) are left out. The test
    split is reported here, never used to choose."""
    from pareto import MS

    rows = []
    for job in result.get("jobs", []):
        for name, figures in ((job["name"], job), (job["name"] + " int8", job.get("int8") or {})):
            if figures.get("test_accuracy") is not None and figures.get("ms_per_face_b1") is not None:
                rows.append({"name": name, "accuracy": figures["test_accuracy"], MS: figures["ms_per_face_b1"]})
    return rows


def _fast_line(choice: dict[str, Any] | None) -> str | None:
    if choice is None:
        return None
    rule = (f"Fast-model choice (the search winner most accurate on validation at no more than "
            f"{choice['reference']}'s mean ms per face + {100 * choice['slack']:.0f}%")
    if choice["waiting"]:
        return rule + f"): waiting for the validation score or timing of {', '.join(choice['waiting'])}."
    if len(choice["cpus"]) > 1:
        return rule + (f"): none yet; the models were timed on different CPUs ({'; '.join(choice['cpus'])}): "
                       f"run the campaign again with --remeasure-speed.")
    rule += f", {choice['max_ms_per_face_b1']:.3f} ms): "
    if choice["job"] is None:
        return rule + f"none; no search winner is that fast, so {choice['reference']} stays the fast model."
    verdict = (f"; {'beats' if choice['beats_reference'] else 'does not beat'} {choice['reference']}'s best seed "
               f"({100 * choice['reference_val_accuracy']:.2f}%)")
    return rule + (f"{choice['job']} ({100 * choice['val_accuracy']:.2f}%, {choice['ms_per_face_b1']:.3f} ms)"
                   f"{verdict}; its architecture file: the carry folder's "
                   f"{Path(choice['genotype'] or '').parent.name}/best_arch.json.")


# ------------------------------------------------------------------------------------------------ markdown
def _num(value: Any, spec: str, scale: float = 1.0) -> str:
    return "" if value is None else format(value * scale if scale != 1.0 else value, spec)


def _stat(s: dict[str, Any] | None, spec: str, scale: float = 1.0) -> str:
    if not s or not s.get("n"):
        return ""
    text = _num(s["mean"], spec, scale)
    return text + (f" ± {_num(s['sd'], spec, scale)}" if s.get("sd") is not None else "")


def _group_line(name: str, kind: str, g: dict[str, Any], cpu: dict[str, Any] | None, params=None, madds=None) -> str:
    n = g["val_accuracy"].get("n", 0)
    return (f"| {name} | {kind} | {n} | {_stat(g['val_accuracy'], '.2f', 100)} | {_stat(g['test_accuracy'], '.2f', 100)} "
            f"| {_stat(g['test_macro_f1'], '.3f')} | {_stat(params, ',.0f')} | {_stat(madds, '.1f', 1e-6)} "
            f"| {_stat(g['ms_per_face_b1'], '.3f')} | {_stat(g['faces_per_s_b64'], ',.0f')} | {_stat(cpu, '.2f')} |")


def markdown(result: dict[str, Any]) -> str:
    """The README tables of a campaign result: per group (mean ± sd, n), then per job, then the best job."""
    split = result["settings"]["test_split"]
    head = (f"| group | kind | n | validation acc. % | {split} acc. % | {split} macro-F1 | params | M mult-adds "
            f"| ms/face (batch 1, 1 thread) | faces/s (batch 64, {result['settings']['threads']} thread(s)) "
            f"| search CPU-h |")
    lines = [head, "|" + "---|" * 11]
    for name, g in result["groups"].items():
        lines.append(_group_line(name, g["kind"], g, g["search_cpu_hours"], g["params"], g["multiply_adds"]))
        if g.get("int8"):
            refused = f" ({len(g['int8']['refused'])} refused)" if g["int8"]["refused"] else ""
            lines.append(_group_line(f"{name} int8{refused}", g["kind"], g["int8"], None))
    lines += ["", f"| job | group | seed | validation acc. % | {split} acc. % | {split} macro-F1 | params "
                  f"| ms/face | faces/s | int8 val. acc. % | int8 ms/face | search CPU-h |", "|" + "---|" * 12]
    for r in result["jobs"]:
        q = r.get("int8") or {}
        int8_acc = "refused" if q.get("refused") else _num(q.get("val_accuracy"), ".2f", 100)
        lines.append(f"| {r['name']} | {r['group']} | {r['seed']} | {_num(r.get('val_accuracy'), '.2f', 100)} "
                     f"| {_num(r.get('test_accuracy'), '.2f', 100)} | {_num(r.get('test_macro_f1'), '.3f')} "
                     f"| {_num(r.get('params'), ',')} | {_num(r.get('ms_per_face_b1'), '.3f')} "
                     f"| {_num(r.get('faces_per_s_b64'), ',.0f')} | {int8_acc} | {_num(q.get('ms_per_face_b1'), '.3f')} "
                     f"| {_num(r.get('search_cpu_hours'), '.2f')} |")
    best = result.get("best")
    lines.append("")
    if best:
        lines.append(f"Best by validation accuracy: {best['job']} ({100 * best['val_accuracy']:.2f}%). "
                     f"{split} is scored once per model and never used to choose.")
    fast = _fast_line(fast_choice(result["jobs"]))
    if fast:
        lines.append(fast)
    lines.append(f"{'Complete' if result['complete'] else 'INCOMPLETE (' + result['status'] + ')'}; command: "
                 f"`{result['command']}`")
    return "\n".join(lines)


def machine() -> dict[str, Any]:
    from importlib.metadata import version

    return {"platform": platform.platform(), "processor": cpu_model(),
            "cpus": os.cpu_count(), "python": platform.python_version(), "torch": version("torch"),
            "onnxruntime": version("onnxruntime"), "load_average": os.getloadavg()}


def campaign_result(campaign, steps: list, command: str, started: str, status: str,
                    complete: bool) -> dict[str, Any]:
    """The campaign's JSON as the work directory holds it now (`campaign`: benchmarks/retrain.py's Runner)."""
    specs = []
    for job in campaign.jobs:
        spec = campaign.spec(job)
        spec["complete"] = all(s.done() for s in steps if s.job == job.name)
        specs.append(spec)
    rows = [job_row(spec, campaign.args.test_split) for spec in specs]
    return {"benchmark": "retrain", "complete": complete, "status": status, "command": command,
            "date_started": started, "date": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
            "machine": machine(), "work_dir": str(campaign.work),
            "settings": {**campaign.settings(), **{k: getattr(campaign.args, k) for k in (
                "test_split", "publictest", "quantize", "threads", "speed_seconds")}},
            "protocol": "validation accuracy: the exported fp32 (or int8) graph without TTA on the shared split's "
                        "validation images, the only figure anything is chosen on; val_accuracy_training: the best "
                        "epoch's (nasfer train's validation, with its TTA setting); test split: scored once per "
                        "model into this file, never used to choose; search CPU-hours: the search process' "
                        "measured CPU time (elapsed x threads where a search lacks it)",
            "steps_done": sum(s.done() for s in steps), "steps_total": len(steps),
            "jobs": rows, "groups": groups(rows), "best": best_job(rows), "fast_choice": fast_choice(rows)}
