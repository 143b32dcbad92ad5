"""Candidates for the shipped default, scored on the VALIDATION split, and the one a rule fixed in advance picks.

Issue 13's release step, made mechanical so that the choice is written down before PublicTest is read: for
every cap K of `--max-members` and with and without flip TTA, `nasfer ensemble --select greedy` picks members
and weights among the given checkpoints (e.g. each member's best.pt and last.pt) on the validation images of
`--split-file`, and `nasfer evaluate --split val` scores the result. A candidate costs members x (2 with TTA,
1 without) network passes per face. The rule (`choose`): the best validation accuracy among candidates of at
most `--max-passes` passes; a candidate of at most `--prefer-passes` passes within `--within` points of it is
preferred (faster at nearly the same accuracy), the best of those. The chosen one replaces today's default
(`--incumbent`, scored on the same validation images) only when more accurate. PublicTest is never read here; score the
chosen graph once, after export (`nasfer evaluate --split PublicTest --model default --record`). Usage:

    python benchmarks/default_candidates.py --checkpoints ~/nasfer-runs/vgg32-long-s{0,1,2}/{best,last}.pt \
        --data ../shared/datasets/fer2013.zip --split-file ~/nasfer-runs/vgg32-long-s0/splits.json \
        --work-dir ~/nasfer-runs/release/long3 --out benchmarks/results/default_candidates.json

Members trained by a `benchmarks/retrain.py --keep-weights` campaign on other machines are its carried
`train-*/weights.pt` files (each run's best.pt without training state, its splits.json beside it), e.g.
`benchmarks/campaigns/issue13/train-vgg32-s{2,3}/weights.pt` with `--split-file
benchmarks/campaigns/issue13/splits.json`. `nasfer ensemble --select greedy` checks each member's splits.json
beside it, so a member without one, such as `src/nasfer/weights/default.pt` (the default's first member, trained
on the same split), goes into a folder of its own with a copy of that split file as `splits.json`.

Each member is scored on validation once with and once without TTA, whatever the number of caps. Candidates
already scored in `--work-dir` (their val.json) are not redone, so a stopped run continues.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any, Sequence

from common import write_result


def choose(rows: Sequence[dict[str, Any]], max_passes: int, prefer_passes: int, within: float) -> dict[str, Any] | None:
    """The candidate the rule picks from `rows` (dicts with "accuracy" in 0..1 and "passes"), or None when none
    has at most `max_passes` passes: the most accurate of those, unless one of at most `prefer_passes` passes is
    within `within` accuracy points (percentage points) of it; then the most accurate of such faster ones.
    Ties go to fewer passes."""
    allowed = [r for r in rows if r["passes"] <= max_passes]
    if not allowed:
        return None
    best = max(allowed, key=lambda r: (r["accuracy"], -r["passes"]))
    faster = [r for r in allowed if r["passes"] <= prefer_passes and 100 * (best["accuracy"] - r["accuracy"]) <= within]
    return max(faster, key=lambda r: (r["accuracy"], -r["passes"])) if faster else best


def replaces(chosen: dict[str, Any] | None, incumbent: dict[str, Any]) -> bool:
    """Whether the chosen candidate replaces today's default: strictly more accurate on the same validation
    images (both dicts with "accuracy" in 0..1); no candidate replaces nothing."""
    return chosen is not None and chosen["accuracy"] > incumbent["accuracy"]


def score_incumbent(args: argparse.Namespace) -> dict[str, Any]:
    """Today's default (`--incumbent`, a model name or file as `nasfer evaluate --model` takes it) scored on the
    same validation images, as it ships (flip TTA inside its graph when its card says so); scored on every run, not
    reused, since the default may have changed since the candidates were scored (seconds for an int8 graph)."""
    from nasfer.cli import main as nasfer

    scored = Path(args.work_dir).expanduser() / "incumbent" / "val.json"
    scored.parent.mkdir(parents=True, exist_ok=True)
    if nasfer(["evaluate", "--data", args.data, "--split-file", args.split_file, "--split", "val", "--model",
               args.incumbent, "--threads", str(args.threads), "--json", str(scored)]) != 0:
        raise SystemExit(f"nasfer evaluate failed for the incumbent {args.incumbent}")
    metrics = json.loads(scored.read_text())
    metrics = metrics.get("metrics", metrics)
    return {"model": args.incumbent, "accuracy": metrics["accuracy"], "macro_f1": metrics["macro_f1"]}


def candidate(args: argparse.Namespace, k: int, tta: bool, predictions: dict) -> dict[str, Any] | None:
    """Select (greedy, at most k members) and score one candidate; None when the selection kept one member only.
    `predictions`: kept across calls, so that each member is scored on validation once per TTA setting, not once
    per cap (`nasfer.commands.ensemble.write_ensemble`)."""
    from nasfer.checkpoint import load_checkpoint
    from nasfer.cli import main as nasfer
    from nasfer.commands.ensemble import EnsembleConfig, write_ensemble
    from nasfer.errors import NasferError

    flag = "--tta" if tta else "--no-tta"
    folder = Path(args.work_dir).expanduser() / f"greedy-k{k}{flag[1:]}"
    folder.mkdir(parents=True, exist_ok=True)
    ensemble, scored = folder / "ensemble.pt", folder / "val.json"
    if not scored.exists():
        cfg = EnsembleConfig(checkpoints=list(args.checkpoints), out=str(ensemble), select="greedy", data=args.data,
                             split_file=args.split_file, max_members=k, tta=tta, threads=args.threads)
        try:
            status = write_ensemble(cfg.validate(), print, predictions)
        except (NasferError, ValueError, OSError) as error:
            raise SystemExit(f"nasfer ensemble failed for K={k} {flag}: {error}") from None
        if status == 1:  # one member better alone: no ensemble to offer (an ensemble.pt here is an older run's)
            return None
        if nasfer(["evaluate", "--data", args.data, "--split-file", args.split_file, "--split", "val", "--model",
                   str(ensemble), flag, "--threads", str(args.threads), "--json", str(scored)]) != 0:
            raise SystemExit(f"nasfer evaluate failed for K={k} {flag}")
    metrics = json.loads(scored.read_text())
    metrics = metrics.get("metrics", metrics)
    checkpoint = load_checkpoint(ensemble)
    weights = checkpoint["model"]["kwargs"]["weights"]
    members = len(weights)
    return {"max_members": k, "tta": tta, "members": members, "weights": [round(w, 4) for w in weights],
            "checkpoints": checkpoint["config"]["ensemble_of"],
            "passes": members * (2 if tta else 1), "accuracy": metrics["accuracy"], "macro_f1": metrics["macro_f1"],
            "ensemble": str(ensemble)}


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--checkpoints", nargs="+", required=True, help="candidate members (.pt of finished runs)")
    parser.add_argument("--data", default="../shared/datasets/fer2013.zip")
    parser.add_argument("--split-file", required=True, help="the members' shared splits.json (its val images score)")
    parser.add_argument("--max-members", type=int, nargs="+", default=[2, 3, 4, 6])
    parser.add_argument("--max-passes", type=int, default=6,
                        help="slowest allowed, in network passes per face: today's default (since 2026-12-05) does 6")
    parser.add_argument("--prefer-passes", type=int, default=3)
    parser.add_argument("--within", type=float, default=0.1, help="accuracy points a faster candidate may lose")
    parser.add_argument("--incumbent", default="default",
                        help="today's default, scored on the same validation images; the chosen candidate replaces "
                             "it only when more accurate (default: the shipped default)")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--work-dir", required=True, help="where the candidate ensembles and their scores go")
    parser.add_argument("--out", default="benchmarks/results/default_candidates.json")
    args = parser.parse_args(argv)
    try:
        run(args)
    except OSError as error:  # an unwritable --work-dir or --out, an unreadable checkpoint: said, not a traceback
        raise SystemExit(f"default_candidates: {error}") from None


def run(args: argparse.Namespace) -> None:
    """Score the candidates and the incumbent, apply the rule, write `args.out`."""
    predictions: dict = {}  # each member's validation predictions, shared by the caps
    rows = [row for tta in (True, False) for k in args.max_members
            if (row := candidate(args, k, tta, predictions)) is not None]
    chosen = choose(rows, args.max_passes, args.prefer_passes, args.within)
    incumbent = score_incumbent(args)
    for row in sorted(rows, key=lambda r: -r["accuracy"]):
        mark = "  <- chosen" if row is chosen else ""
        print(f"K={row['max_members']} {'TTA' if row['tta'] else 'no TTA':6s} members {row['members']} passes "
              f"{row['passes']}: val accuracy {row['accuracy']:.4f}, macro-F1 {row['macro_f1']:.4f}{mark}")
    replace = replaces(chosen, incumbent)
    print(f"incumbent ({args.incumbent}): val accuracy {incumbent['accuracy']:.4f}, macro-F1 "
          f"{incumbent['macro_f1']:.4f}; " + ("the chosen candidate replaces it" if replace else
                                               "it stays: no allowed candidate is more accurate"))
    write_result({"benchmark": "default_candidates", "split": "validation (never PublicTest)",
                  "rule": {"max_passes": args.max_passes, "prefer_passes": args.prefer_passes,
                           "within_points": args.within},
                  "candidates": rows, "chosen": chosen, "incumbent": incumbent, "replaces_incumbent": replace,
                  "command": "python benchmarks/default_candidates.py " + " ".join(sys.argv[1:])}, args.out)


if __name__ == "__main__":
    main()
