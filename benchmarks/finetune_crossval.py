"""Fine-tuning the shipped default on a small folder dataset with DEFAULT flags: subject-independent crossval.

    python scripts/build_pseudo_ckplus.py --out /tmp/ckplus_pseudo        # 794 held-out FER2013 Training faces
    nice -n 10 python benchmarks/finetune_crossval.py run --data /tmp/ckplus_pseudo/CK+48 --label after
    python benchmarks/finetune_crossval.py zeroshot --data /tmp/ckplus_pseudo/CK+48 --run-dir /tmp/nasfer-ft-before
    python benchmarks/finetune_crossval.py compare before after

`run` runs, with no training flag beyond the data and the starting point,

    nasfer crossval --data DATA --label-set folders --folds 10 --init-from default --threads 1 --out RUN

and writes `benchmarks/results/finetune_crossval_<label>.json`: per-fold accuracy and macro-F1 (from each
fold's test.json), their mean and sample std, the epochs and batch each fold trained with, wall time, the
command and the code revision. `--code SRC --rev REV` runs another checkout's `nasfer` (e.g. the code
before a change: `git archive REV src | tar -x -C /tmp/before`). `--summarize-only` re-reads an existing
run directory (an interrupted crossval keeps its finished folds; the JSON then says how many there are).
`zeroshot --run-dir RUN` scores the starting point itself (default.pt, not fine-tuned) on the same folds.
`compare A B [--out NAME.json]` writes `finetune_crossval_compare.json` (or NAME.json): both summaries and the
paired per-fold differences B - A over the folds both finished (A or B may be a zero-shot result; the folds
are the same: seeded by subject, independent of the code).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

from common import write_result

REPO = Path(__file__).resolve().parents[1]
RESULTS = REPO / "benchmarks" / "results"


def stats(values: list[float]) -> dict:
    arr = np.asarray(values, dtype=np.float64)
    return {"mean": float(arr.mean()) if len(arr) else None, "std": float(arr.std(ddof=1)) if len(arr) > 1 else None,
            "per_fold": [round(float(v), 4) for v in arr]}


def best_checkpoint(fold_dir: Path, history: list[dict]) -> tuple[float, int]:
    """(validation accuracy, best_epoch) of the fold's best.pt: an epoch's, or 0 for the starting weights, which
    a fine-tuning run keeps when no epoch beats them (so the history alone cannot say)."""
    best = fold_dir / "best.pt"
    if not best.is_file():
        i = max(range(len(history)), key=lambda k: history[k]["val_acc"])
        return history[i]["val_acc"], i + 1
    import torch

    ckpt = torch.load(best, map_location="cpu", weights_only=False)
    return float(ckpt["metrics"]["val_accuracy"]), int(ckpt["epoch"]) + 1


def summarize(run_dir: Path) -> dict:
    """Per-fold figures from the fold directories that finished (fold-NN/test.json)."""
    folds = []
    for fold_dir in sorted(run_dir.glob("fold-*")):
        test = fold_dir / "test.json"
        if not test.is_file():
            continue
        report = json.loads(test.read_text())
        train = json.loads((fold_dir / "config.json").read_text())["train"]
        history = json.loads((fold_dir / "history.json").read_text())
        best_val, best_epoch = best_checkpoint(fold_dir, history)
        folds.append({"fold": int(fold_dir.name.split("-")[1]), "n_test": report["n"],
                      "accuracy": round(report["accuracy"], 4), "macro_f1": round(report["macro_f1"], 4),
                      "epochs": train["epochs"], "batch_size": train["batch_size"], "lr": train["lr"],
                      "best_val_accuracy": round(best_val, 4), "best_epoch": best_epoch,
                      "seconds": round(sum(h["seconds"] for h in history), 1)})
    return {"folds_finished": len(folds), "accuracy": stats([f["accuracy"] for f in folds]),
            "macro_f1": stats([f["macro_f1"] for f in folds]), "per_fold": folds}


def run(args: argparse.Namespace) -> int:
    run_dir = Path(args.run_dir or f"/tmp/nasfer-ft-{args.label}")
    flags = ["crossval", "--data", args.data, "--label-set", "folders", "--folds", str(args.folds),
             "--init-from", "default", "--threads", "1", "--out", str(run_dir)]
    rev = args.rev or subprocess.run(["git", "-C", str(REPO), "rev-parse", "--short", "HEAD"], capture_output=True,
                                     text=True).stdout.strip()
    seconds = None
    if not args.summarize_only:
        started = time.perf_counter()
        proc = subprocess.run([sys.executable, "-c", "import sys; from nasfer.cli import main; sys.exit(main())",
                               *flags], env={**os.environ, "PYTHONPATH": args.code})
        seconds = round(time.perf_counter() - started, 1)
        if proc.returncode != 0:
            print(f"nasfer crossval failed with status {proc.returncode}", file=sys.stderr)
            return proc.returncode
    else:  # re-summarising: keep the wall time an earlier `run` of this label measured
        previous = RESULTS / f"finetune_crossval_{args.label}.json"
        seconds = json.loads(previous.read_text()).get("wall_seconds") if previous.is_file() else None
    complete = (run_dir / "crossval.json").is_file()
    write_result({
        "benchmark": "finetune_crossval", "label": args.label,
        "command": "nasfer " + " ".join(flags), "code_revision": rev, "data": args.data, "folds": args.folds,
        "complete": complete, **summarize(run_dir), "wall_seconds": seconds,
        "note": "default flags only; the data is held-out FER2013 Training faces (the validation role no shipped "
                "model trained on) in pseudo-subjects (scripts/build_pseudo_ckplus.py): a pipeline check, "
                "not a CK+ result",
    }, RESULTS / f"finetune_crossval_{args.label}.json")
    return 0


def compare(args: argparse.Namespace) -> int:
    a, b = (json.loads((RESULTS / f"finetune_crossval_{label}.json").read_text()) for label in (args.a, args.b))
    fa, fb = ({f["fold"]: f for f in r["per_fold"]} for r in (a, b))
    common = sorted(set(fa) & set(fb))
    paired = {}
    for key in ("accuracy", "macro_f1"):
        d = [fb[f][key] - fa[f][key] for f in common]
        paired[key] = {args.a: stats([fa[f][key] for f in common]), args.b: stats([fb[f][key] for f in common]),
                       "difference": stats(d)}
    command = f"python benchmarks/finetune_crossval.py compare {args.a} {args.b}" + (f" --out {args.out}" if args.out else "")
    write_result({"benchmark": "finetune_crossval_compare", "command": command, "folds_compared": common, "paired": paired,
                  # a zero-shot result has no code revision of its own: None there
                  args.a: {k: a.get(k) for k in ("command", "code_revision", "folds_finished", "accuracy", "macro_f1")},
                  args.b: {k: b.get(k) for k in ("command", "code_revision", "folds_finished", "accuracy", "macro_f1")}},
                 RESULTS / (args.out or "finetune_crossval_compare.json"))
    return 0


def zeroshot(args: argparse.Namespace) -> int:
    """The starting point itself, not fine-tuned: default.pt (flip TTA, as crossval scores) on each fold's test
    images, its outputs restricted to the dataset's labels (synonyms mapped, renormalised)."""
    from nasfer.checkpoint import load_model, preprocessing_of
    from nasfer.data import read_dataset
    from nasfer.data.splits import sample_keys
    from nasfer.distill import label_columns
    from nasfer.metrics import classification_report
    from nasfer.train import evaluate_model
    from nasfer.weights import default_checkpoint_path

    data = read_dataset(args.data, label_set="folders")
    keys = sample_keys(data.sources, args.data)
    model, ckpt = load_model(default_checkpoint_path())
    probs = evaluate_model(model, data.images, preprocessing_of(ckpt), tta=True)
    probs = probs[:, label_columns(tuple(ckpt["labels"]), tuple(data.label_names))]
    probs = probs / probs.sum(1, keepdims=True)
    folds = []
    for fold_dir in sorted(Path(args.run_dir).glob("fold-*")):
        roles = json.loads((fold_dir / "splits.json").read_text())["splits"]
        idx = np.flatnonzero([roles[k] == "test" for k in keys.tolist()])
        report = classification_report(data.labels[idx], probs[idx], list(data.label_names))
        folds.append({"fold": int(fold_dir.name.split("-")[1]), "n_test": int(len(idx)),
                      "accuracy": round(float(report["accuracy"]), 4), "macro_f1": round(float(report["macro_f1"]), 4)})
    write_result({"benchmark": "finetune_crossval", "label": "zeroshot",
                  "command": f"python benchmarks/finetune_crossval.py zeroshot --data {args.data} --run-dir {args.run_dir}",
                  "model": "src/nasfer/weights/default.pt, not fine-tuned, flip TTA; the dataset's labels only",
                  "folds_finished": len(folds), "accuracy": stats([f["accuracy"] for f in folds]),
                  "macro_f1": stats([f["macro_f1"] for f in folds]), "per_fold": folds},
                 RESULTS / "finetune_crossval_zeroshot.json")
    return 0


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    sub = parser.add_subparsers(dest="what", required=True)
    p = sub.add_parser("run")
    p.add_argument("--data", required=True, help="CK+-style folder (<class>/S<subject>_..png)")
    p.add_argument("--label", required=True, help="result name: finetune_crossval_<label>.json")
    p.add_argument("--folds", type=int, default=10)
    p.add_argument("--run-dir", default=None, help="crossval --out (default: /tmp/nasfer-ft-<label>)")
    p.add_argument("--code", default=str(REPO / "src"), help="the nasfer source tree to run")
    p.add_argument("--rev", default=None, help="git revision of --code (default: this checkout's HEAD)")
    p.add_argument("--summarize-only", action="store_true", help="do not run; summarise the run directory")
    c = sub.add_parser("compare")
    c.add_argument("a")
    c.add_argument("b")
    c.add_argument("--out", default=None, help="file name in benchmarks/results (default: finetune_crossval_compare.json)")
    z = sub.add_parser("zeroshot")
    z.add_argument("--data", required=True)
    z.add_argument("--run-dir", required=True, help="a crossval run directory (its folds' splits.json)")
    args = parser.parse_args()
    return {"run": run, "compare": compare, "zeroshot": zeroshot}[args.what](args)


if __name__ == "__main__":
    sys.exit(main())
