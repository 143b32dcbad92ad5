"""Data-parallel training speed: the same run as one process and as N torchrun processes (gloo, CPU).

    python benchmarks/ddp_train_speed.py [--processes 2] [--images-per-class 300] [--epochs 3]

Generates a 7-class folder dataset of 48x48 pattern images (a class-specific bright bar in noise) in a
temporary folder, then trains the same VGG (width 16, global batch 128, fp32) three ways, each from a
fresh process, and writes `benchmarks/results/ddp_train_speed.json`:

- `1 process x 1 thread`      python -m nasfer train ... --threads 1
- `N processes x 1 thread`    torchrun --standalone --nproc_per_node N -m nasfer train ... --threads 1
- `1 process x N threads`     python -m nasfer train ... --threads N   (the same cores without DDP)

with the wall time of the whole command (start-up and data loading included), the median seconds per
epoch from history.json, and the final validation accuracy of each. Run it on an otherwise idle machine.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from common import write_result

REPO = Path(__file__).resolve().parents[1]
CLASSES = ("angry", "disgust", "fear", "happy", "sad", "surprise", "neutral")


def make_dataset(root: Path, per_class: int, seed: int = 0) -> None:
    from PIL import Image

    rng = np.random.default_rng(seed)
    for k, name in enumerate(CLASSES):
        (root / name).mkdir(parents=True)
        for i in range(per_class):
            img = rng.normal(90, 30, (48, 48))
            row = 4 + k * 6
            img[row:row + 4, :] += 100 if k % 2 else 0
            img[:, row:row + 4] += 0 if k % 2 else 100
            Image.fromarray(np.clip(img, 0, 255).astype(np.uint8)).save(root / name / f"{i:05d}.png")


def timed(cmd: list[str], out: Path) -> dict:
    env = {**os.environ, "PYTHONPATH": str(REPO / "src"), "OMP_NUM_THREADS": "1"}
    started = time.perf_counter()
    done = subprocess.run(cmd, env=env, capture_output=True, text=True)
    wall = time.perf_counter() - started
    if done.returncode != 0:
        raise SystemExit(f"{' '.join(cmd)} failed:\n{done.stderr[-3000:]}")
    history = json.loads((out / "history.json").read_text())
    return {"command": " ".join([Path(cmd[0]).name, *cmd[1:]]),
            "wall_seconds": round(wall, 1),
            "epoch_seconds_median": round(statistics.median(h["seconds"] for h in history), 2),
            "images_per_second": round(statistics.median(h["images_per_second"] for h in history), 1),
            "final_val_acc": round(history[-1]["val_acc"], 4)}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--processes", type=int, default=2)
    parser.add_argument("--images-per-class", type=int, default=300)
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("--out", default=str(REPO / "benchmarks" / "results" / "ddp_train_speed.json"))
    args = parser.parse_args()
    torchrun = shutil.which("torchrun")
    if torchrun is None:
        raise SystemExit("torchrun not found (it comes with torch)")
    load_start = os.getloadavg()[0]  # other work on the machine skews every figure: recorded beside them
    work = Path(tempfile.mkdtemp(prefix="nasfer-ddp-"))
    try:
        make_dataset(work / "data", args.images_per_class)
        n = args.processes
        common = ["train", "--data", str(work / "data"), "--label-set", "folders", "--width", "16",
                  "--epochs", str(args.epochs), "--batch-size", "128", "--precision", "fp32", "--seed", "0"]
        runs = {}
        for name, launcher, threads in (
                ("1 process x 1 thread", [sys.executable, "-m", "nasfer"], 1),
                (f"{n} processes x 1 thread", [torchrun, "--standalone", "--nproc_per_node", str(n), "-m", "nasfer"], 1),
                (f"1 process x {n} threads", [sys.executable, "-m", "nasfer"], n)):
            out = work / name.replace(" ", "")
            runs[name] = timed([*launcher, *common, "--threads", str(threads), "--out", str(out)], out)
            print(name, runs[name], flush=True)
        base = runs["1 process x 1 thread"]["epoch_seconds_median"]
        load_before = round(load_start, 2)
        for r in runs.values():
            r["speedup_per_epoch"] = round(base / r["epoch_seconds_median"], 2)
        write_result({
            "benchmark": "ddp_train_speed",
            "command": f"python benchmarks/ddp_train_speed.py --processes {n} --images-per-class "
                       f"{args.images_per_class} --epochs {args.epochs}",
            "machine": {"cpus": os.cpu_count(), "processor": platform.processor() or platform.machine(),
                        "load_average_1min_before": load_before, "load_average_1min_after": round(os.getloadavg()[0], 2)},
            "images": args.images_per_class * len(CLASSES), "model": "vgg width 16", "global_batch": 128,
            "runs": runs,
        }, args.out)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
