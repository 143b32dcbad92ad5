"""Proxy calibration: how well do cheap fidelities rank architectures the way full training does?

Architectures: `--n-macro` points of the macro search space spread over `--latency-range` (ms per face,
batch 1, exported ONNX graph in ONNX Runtime CPU with 1 thread; the first draw landing in each empty
log-spaced latency bin, drawn with `--seed`, every other draw with the smallest stem so the fastest bins
fill too; candidates whose latency, predicted from multiply-adds, falls in full bins are not timed), plus
VGG-16 (`vgg --width 16`), mini-Xception and NASNet-A at 1 @ 8 (`nasnet-a-mobile --cells 1 --width 8`: one cell
per stack at width 8, inside the latency range; nasfer's `nasnet-a-mobile` default, 2 @ 16, is about 1.1 ms per
face, outside it, and trains about 3x slower still, ~45 min an epoch here). The hand designs follow HAND: a
frozen list whose hand entries differ from it has them replaced (`follow_hand`: their old run directories are
kept, renamed aside where the id is reused).

- reference: `nasfer train` with its standard recipe for `--ref-epochs` epochs at 48 px (best validation
  accuracy, flip-TTA, as every run reports it); `--second-seed` of the models (spread over latency) are
  trained again with seed 1: the seed-to-seed spread is the noise ceiling of any ranking;
- proxies (`--proxies`, `nasfer.nas.fidelity` names, exactly what `nasfer search --rungs` runs):
  e.g. 150 steps at 24 px, 1 and 3 epochs at 48 px, 3 epochs at 32 px; training-free: parameters and
  multiply-adds;
- per proxy: Kendall's tau-b with the reference and its bootstrap 95% CI (resampling architectures),
  tau within the reference's top half, top-1 regret (reference accuracy lost by taking the proxy's
  favourite), mean seconds per architecture; the cheapest proxy with tau >= 0.6 is named.

All on the validation split of `--split-file` (the split the ensemble members use) or drawn like
`nasfer train` draws it; test images are never read. Resumable: the chosen architectures are frozen in
<work-dir>/models.json, every reference run checkpoints each epoch (`nasfer train` resumes it), every
proxy score is saved when done, and the script skips whatever is finished, so the same command
continues an interrupted calibration. The JSON is rewritten after every step, with `complete: false`
and the counts done until everything is in. Usage (FER2013, one thread):

    python benchmarks/proxy_calibration.py --data fer2013.zip --split-file runs/vgg32-long-s0/splits.json \
        --work-dir runs/calibration --out benchmarks/results/proxy_calibration.json --threads 1
"""

from __future__ import annotations

import argparse
import json
import math
import random
import sys
import time
from pathlib import Path

import numpy as np

from calibration_stats import analyse, markdown

HAND = [("vgg16", "vgg", {"width": 16}), ("mini-xception", "mini-xception", {}),
        ("nasnet-a-1@8", "nasnet-a-mobile", {"F": 8, "N": 1})]


def parse_args(argv=None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    p.add_argument("--data", help="dataset (fer2013.zip); only its Training part is read")
    p.add_argument("--split-file", default="", help="split file (train/val roles) shared with the other runs")
    p.add_argument("--work-dir", default="runs/calibration", help="models.json, one run directory per model")
    p.add_argument("--out", default="benchmarks/results/proxy_calibration.json", help="results JSON")
    p.add_argument("--n-macro", type=int, default=12, help="macro-space architectures (one per latency bin)")
    p.add_argument("--latency-range", type=float, nargs=2, default=(0.05, 0.5), help="ms per face, batch 1")
    p.add_argument("--max-candidates", type=int, default=400, help="macro specs tried to fill the latency bins")
    p.add_argument("--blocks", type=int, default=5, help="blocks of the NASNet cells in macro specs")
    p.add_argument("--ref-epochs", type=int, default=20, help="epochs of the reference training (48 px)")
    p.add_argument("--second-seed", type=int, default=4, help="how many models are trained again with seed 1 (the "
                                                               "noise ceiling)")
    p.add_argument("--proxies", nargs="+", default=["150s@24", "1e@48", "3e@32", "3e@48"], help="fidelities scored")
    p.add_argument("--threads", type=int, default=1, help="torch threads")
    p.add_argument("--seed", type=int, default=0, help="seed of the architecture draw and of the split")
    p.add_argument("--bootstrap", type=int, default=2000, help="bootstrap resamples for the CIs")
    p.add_argument("--no-hand", action="store_true", help="leave out VGG-16, mini-Xception and NASNet-A (tests)")
    p.add_argument("--table", metavar="RESULTS_JSON", help="print the README tables of a results file and exit "
                                                        "(no training; --data is then not needed)")
    p.add_argument("--remeasure-latency", action="store_true",
                   help="time every model again (run on a quiet machine) and save the times in models.json")
    return p.parse_args(argv)


def log(message: str) -> None:
    print(f"{time.strftime('%H:%M:%S')} {message}", flush=True)


# ---------------------------------------------------------------------------- the architectures


def pick_models(args, work: Path) -> list[dict]:
    """The frozen list in models.json, or a new draw (macro specs binned by latency + the hand designs)."""
    path = work / "models.json"
    if path.is_file():
        saved = json.loads(path.read_text())
        models = list(saved["models"]) if args.no_hand else follow_hand(saved["models"], work)
        if sum(m["name"] == "macro" for m in models) < args.n_macro:
            models += top_up(models, args)
        if models != saved["models"]:
            saved["models"] = models
            path.write_text(json.dumps(saved, indent=1, default=str))
        # --no-hand leaves the frozen hand entries (and their second-seed choice) in the file, untrained
        return [m for m in models if m["name"] == "macro"] if args.no_hand else models
    from nasfer.models import create_model
    from nasfer.models.baselines import count_flops
    from nasfer.nas.latency import measure_latency
    from nasfer.nas.space import make_space

    lo, hi = args.latency_range
    edges = np.geomspace(lo, hi, args.n_macro + 1)
    bins: list[dict | None] = [None] * args.n_macro
    space, rng = make_space("macro", blocks=args.blocks), random.Random(args.seed)
    names = [d.name for d in space.decisions]
    seen: list[tuple[float, float]] = []  # (log multiply-adds, log ms) of measured candidates
    for tried in range(1, args.max_candidates + 1):
        values = list(space.sample(rng))
        if tried % 2 == 0:  # every other draw conditioned on a small stem, or the fastest bins stay empty
            values[names.index("stem.stride")], values[names.index("stem.width")] = 1, 0
        spec = space.decode(values)
        flops = count_flops(create_model("macro", spec=spec))
        if len(seen) >= 5:  # skip candidates whose predicted bin (log-log fit of ms on multiply-adds) is full
            slope, icept = np.polyfit([a for a, _ in seen], [b for _, b in seen], 1)
            k = int(np.searchsorted(edges, math.exp(icept + slope * math.log(flops)), side="right")) - 1
            near = [j for j in (k - 1, k, k + 1) if 0 <= j < args.n_macro]
            if not near or all(bins[j] is not None for j in near):
                continue
        quick = measure_latency("macro", {"spec": spec}, runs_b1=30, runs_b64=2)["ms_per_face_b1"]
        seen.append((math.log(flops), math.log(quick)))
        k = int(np.searchsorted(edges, quick, side="right")) - 1
        if 0 <= k < args.n_macro and bins[k] is None:
            bins[k] = {"id": f"macro-{k:02d}", "name": "macro", "kwargs": {"spec": spec}}
            log(f"picked macro-{k:02d}: {quick:.3f} ms/face (bin {edges[k]:.3f}-{edges[k + 1]:.3f}), candidate {tried}")
        if all(bins):
            break
    models = [b for b in bins if b is not None]
    if len(models) < args.n_macro:
        log(f"only {len(models)} of {args.n_macro} latency bins filled after {args.max_candidates} candidates")
    if not args.no_hand:
        models += [{"id": i, "name": n, "kwargs": k} for i, n, k in HAND]
    models = [measured(m) for m in models]
    by_latency = sorted(models, key=lambda m: m["latency"]["ms_per_face_b1"])
    hand = [m for m in models if m["name"] != "macro"]
    spread = [by_latency[round(q * (len(by_latency) - 1))] for q in (0.25, 0.75, 0.5, 0.0, 1.0)]
    chosen = []
    for m in hand + spread:
        if m not in chosen and len(chosen) < args.second_seed:
            chosen.append(m)
    for m in models:
        m["second_seed"] = m in chosen
    order = random.Random(args.seed).sample(models, len(models))  # spread partial results over the range
    work.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps({"drawn_with": vars(args), "models": order}, indent=1, default=str))
    return order


def measured(model: dict) -> dict:
    """`model` with its parameters, multiply-adds and ONNX Runtime latency."""
    from nasfer.models import create_model
    from nasfer.models.baselines import count_flops, count_params
    from nasfer.nas.latency import measure_latency

    net = create_model(model["name"], **model["kwargs"])
    return {**model, "params": count_params(net), "flops": count_flops(net),
            "latency": measure_latency(model["name"], model["kwargs"])}


def follow_hand(models: list[dict], work: Path) -> list[dict]:
    """The frozen list with its hand designs as HAND has them now: an entry whose id, model or kwargs differ from
    HAND's (e.g. NASNet-A at nasfer's mobile default 2 @ 16, replaced by 1 @ 8) is dropped, a missing one is
    measured and added (no second seed: the second-seed choice was made at the draw). Macro entries are kept.
    A dropped entry's directory is left in place, or renamed `<id>.replaced-N` when HAND reuses its id, so
    its proxies and runs are never taken for the new model's."""
    hand = {i: {"id": i, "name": n, "kwargs": k} for i, n, k in HAND}

    def current(m: dict) -> bool:
        return m["id"] in hand and (m["name"], m["kwargs"]) == (hand[m["id"]]["name"], hand[m["id"]]["kwargs"])

    kept = [m for m in models if m["name"] == "macro" or current(m)]
    for m in models:
        if m in kept:
            continue
        log(f"{m['id']}: no longer in the hand designs; dropped (its directory is left as it is)")
        if m["id"] in hand and (work / m["id"]).exists():
            n = 1
            while (work / f"{m['id']}.replaced-{n}").exists():
                n += 1
            (work / m["id"]).rename(work / f"{m['id']}.replaced-{n}")
            log(f"{m['id']}: its directory is now {m['id']}.replaced-{n}")
    have = {m["id"] for m in kept}
    added = [{**measured(m), "second_seed": False} for i, m in hand.items() if i not in have]
    for m in added:
        log(f"{m['id']}: added ({m['latency']['ms_per_face_b1']:.3f} ms/face, {m['params']:,} params)")
    return kept + added


def training_order(models: list[dict]) -> list[dict]:
    """Fastest first (ms per face, batch 1): training cost grows with latency (NASNet's many small ops train far
    slower than their latency suggests), and partial results should cover as many architectures as possible."""
    return sorted(models, key=lambda m: m["latency"]["ms_per_face_b1"])


def remeasure(models: list[dict], work: Path) -> None:
    """Time every model again (`nasfer.nas.latency.measure_latency`) and rewrite models.json with the new times."""
    from nasfer.nas.latency import measure_latency

    for m in models:
        old = m["latency"]["ms_per_face_b1"]
        m["latency"] = measure_latency(m["name"], m["kwargs"])
        log(f"{m['id']}: {old:.3f} -> {m['latency']['ms_per_face_b1']:.3f} ms/face (batch 1)")
    path = work / "models.json"
    saved = json.loads(path.read_text())
    by_id = {m["id"]: m["latency"] for m in models}
    for m in saved["models"]:
        m["latency"] = by_id.get(m["id"], m["latency"])
    path.write_text(json.dumps(saved, indent=1, default=str))


def top_up(models: list[dict], args) -> list[dict]:
    """Macro models for the latency bins the first draw left empty (another seed stream; small one-block-per-stage
    draws for the fast half);
    the one nearest (log latency) to an empty bin's centre is taken when none lands inside it."""
    from nasfer.nas.latency import measure_latency
    from nasfer.nas.space import make_space

    edges = np.geomspace(*args.latency_range, args.n_macro + 1)
    taken = {m["id"] for m in models}
    missing = [k for k in range(args.n_macro) if f"macro-{k:02d}" not in taken]
    space, rng = make_space("macro", blocks=args.blocks), random.Random(args.seed + 1)
    names = [d.name for d in space.decisions]
    added = []
    for k in missing:
        centre, best = math.sqrt(edges[k] * edges[k + 1]), None
        for tried in range(1, args.max_candidates // 4 + 1):
            values = list(space.sample(rng))
            if k < args.n_macro // 2:  # the fast bins: smallest stem, one block per stage
                values[names.index("stem.stride")], values[names.index("stem.width")] = 1, 0
                for name in ("stage0.depth", "stage1.depth", "stage2.depth", "stage3.depth"):
                    values[names.index(name)] = 0
            spec = space.decode(values)
            ms = measure_latency("macro", {"spec": spec}, runs_b1=30, runs_b64=2)["ms_per_face_b1"]
            if best is None or abs(math.log(ms / centre)) < abs(math.log(best[0] / centre)):
                best = (ms, spec)
            if edges[k] <= ms < edges[k + 1]:
                break
        m = measured({"id": f"macro-{k:02d}", "name": "macro", "kwargs": {"spec": best[1]}, "second_seed": False})
        log(f"topped up macro-{k:02d}: {best[0]:.3f} ms/face (bin {edges[k]:.3f}-{edges[k + 1]:.3f}), {tried} tries")
        added.append(m)
    return added


# ---------------------------------------------------------------------------- training


def reference(model: dict, args, work: Path, seed: int) -> float | None:
    """Best validation accuracy of `nasfer train` for --ref-epochs (resumed when interrupted)."""
    from nasfer.config import DataConfig, TrainConfig
    from nasfer.train import fit

    run = work / model["id"] / f"ref-s{seed}"
    history = run / "history.json"
    if history.is_file() and len(json.loads(history.read_text())) >= args.ref_epochs:
        return best_val(history)
    options = {"epochs": args.ref_epochs, "threads": args.threads, "seed": seed, "out": str(run),
               "split_file": args.split_file or None}
    if model["name"] == "macro":
        spec_file = work / model["id"] / "spec.json"
        spec_file.write_text(json.dumps(model["kwargs"]["spec"], indent=1))
        options["genotype"] = str(spec_file)
    else:  # a registered model: its width (NASNet: F) and NASNet cells per stack N as nasfer train's flags
        kwargs = model["kwargs"]
        options.update(arch=model["name"], width=kwargs.get("width", kwargs.get("F", 0)), cells=kwargs.get("N", 0))
    start = time.monotonic()
    fit(TrainConfig(**options), DataConfig(data=args.data), progress=False)
    acc = best_val(history)
    log(f"{model['id']}: reference seed {seed}, {args.ref_epochs} epochs: val acc {acc:.4f} "
        f"({(time.monotonic() - start) / 60:.1f} min)")
    return acc


def best_val(history: Path) -> float:
    rows = json.loads(history.read_text())
    return max(max(r["val_acc"], r.get("val_acc_ema", 0.0)) for r in rows)


def proxy_scores(model: dict, args, work: Path, data) -> dict:
    """{fidelity: {"accuracy", "seconds"}}, each computed once and saved in <model>/proxies.json."""
    from nasfer.nas.fidelity import Fidelity, train_child

    path = work / model["id"] / "proxies.json"
    done = json.loads(path.read_text()) if path.is_file() else {}
    for name in args.proxies:
        if name in done:
            continue
        start = time.monotonic()
        acc = train_child(model["name"], model["kwargs"], data, Fidelity.parse(name), seed=args.seed)
        done[name] = {"accuracy": acc, "seconds": round(time.monotonic() - start, 1)}
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(done, indent=1))
        log(f"{model['id']}: proxy {name}: val acc {acc:.4f} ({done[name]['seconds']:.0f} s)")
    return done


def write(models: list[dict], args, started: float, complete: bool) -> None:
    import platform

    n_ref = sum(1 for m in models if m.get("reference", {}).get("0") is not None)
    result = {
        "benchmark": "proxy_calibration", "complete": complete,
        "status": "complete" if complete else (f"PARTIAL: {n_ref} of {len(models)} architectures have their "
                                               f"reference; statistics cover only those"),
        "command": "python benchmarks/proxy_calibration.py " + " ".join(sys.argv[1:]),
        "date": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()), "machine": platform.platform(),
        "threads": args.threads, "reference": f"nasfer train, standard recipe, {args.ref_epochs} epochs at 48 px, "
                                              "best validation accuracy (flip TTA)",
        "proxy_recipe": "nasfer.nas.fidelity.train_child (nasfer train's recipe compressed to the fidelity), "
                        "validation accuracy without TTA",
        "latency": "ms per face, exported ONNX graph in ONNX Runtime CPU, 1 intra-op thread",
        "split_file": args.split_file or None, "hours_this_invocation": round((time.monotonic() - started) / 3600, 2),
        **analyse(models, args),
        "models": [{k: m.get(k) for k in ("id", "name", "params", "flops", "latency", "second_seed", "reference",
                                           "proxies")} | {"spec": m["kwargs"].get("spec")} for m in models],
    }
    from nasfer.atomic import write_text_atomic

    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    write_text_atomic(out, json.dumps(result, indent=1))


def check_args(args) -> str | None:
    """What is wrong with the arguments, found before any work (None when nothing is)."""
    from nasfer.errors import NasferError
    from nasfer.nas.fidelity import Fidelity

    if not args.data:
        return "--data is required (or --table RESULTS_JSON)"
    if not Path(args.data).expanduser().exists():
        return f"--data {args.data}: no such file or folder"
    if args.split_file and not Path(args.split_file).expanduser().is_file():
        return f"--split-file {args.split_file}: no such file"
    lo, hi = args.latency_range
    if not 0 < lo < hi:
        return f"--latency-range needs 0 < LOW < HIGH ms, got {lo} {hi}"
    for name in args.proxies:
        try:
            Fidelity.parse(name)
        except (ValueError, NasferError) as exc:
            return f"--proxies {name}: {exc}"
    for flag, value in (("--n-macro", args.n_macro), ("--ref-epochs", args.ref_epochs), ("--threads", args.threads),
                        ("--blocks", args.blocks), ("--max-candidates", args.max_candidates)):
        if value < 1:
            return f"{flag} must be at least 1, got {value}"
    if args.second_seed < 0 or args.bootstrap < 0:
        return "--second-seed and --bootstrap must be >= 0"
    return None


def main(argv=None) -> int:
    args = parse_args(argv)
    if args.table:
        try:
            print(markdown(json.loads(Path(args.table).read_text())))
        except (OSError, ValueError, KeyError, TypeError) as exc:
            print(f"proxy_calibration.py: {args.table}: not a results file of this script "
                  f"({type(exc).__name__}: {exc})", file=sys.stderr)
            return 2
        return 0
    problem = check_args(args)
    if problem:
        print(f"proxy_calibration.py: {problem}", file=sys.stderr)
        return 2
    import torch

    from nasfer.nas.data import load_search_data

    torch.set_num_threads(args.threads)
    started = time.monotonic()
    work = Path(args.work_dir)
    models = pick_models(args, work)
    log(f"{len(models)} architectures; work dir {work}; results {args.out}")
    if args.remeasure_latency:
        remeasure(models, work)
    data = load_search_data(args.data, seed=args.seed, split_file=args.split_file or None)
    models = training_order(models)
    for i, m in enumerate(models):
        ms = m["latency"]["ms_per_face_b1"]
        log(f"[{i + 1}/{len(models)}] {m['id']} ({ms:.3f} ms/face, {m['params']:,} params)")
        m["proxies"] = proxy_scores(m, args, work, data)
        m.setdefault("reference", {})["0"] = reference(m, args, work, 0)
        write(models, args, started, complete=False)
    for m in [m for m in models if m["second_seed"]]:
        log(f"second seed: {m['id']}")
        m["reference"]["1"] = reference(m, args, work, 1)
        write(models, args, started, complete=False)
    write(models, args, started, complete=True)
    log(f"done: {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
