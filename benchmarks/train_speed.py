"""Training throughput (images/s) of every registered model on this machine's CPU.

Runs a few timed optimizer steps per model at 48x48, batch 128, in fp32 and bf16 autocast, each in the
memory format `nasfer train` picks for it (`nasfer.training.model.memory_format_for`, recorded per row),
and writes JSON. Usage:

    python benchmarks/train_speed.py [--models vgg resnet18] [--steps 5] [--out benchmarks/results/train_speed.json]
"""

from __future__ import annotations

import argparse
import os
import platform
import sys
import time

import torch
import torch.nn.functional as F

from nasfer.models import create_model, list_models
from nasfer.models.baselines import count_flops, count_params
from nasfer.training.model import memory_format_for
from nasfer.training.precision import BF16_CPU_FLAGS, cpu_flags, resolve_precision

from common import write_result


def images_per_second(name: str, batch: int, steps: int, precision: str) -> float:
    torch.manual_seed(0)
    model = create_model(name)
    fmt = memory_format_for(model, precision)
    model = model.to(memory_format=fmt).train()
    opt = torch.optim.AdamW(model.parameters(), lr=1e-3)
    x = torch.randn(batch, 1, 48, 48).to(memory_format=fmt)
    y = torch.randint(0, 7, (batch,))

    def step() -> None:
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=precision == "bf16"):
            out = model(x)
            logits = out[0] if isinstance(out, tuple) else out
            loss = F.cross_entropy(logits.float(), y)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()

    step()  # warm-up: allocator, kernels
    started = time.perf_counter()
    for _ in range(steps):
        step()
    return steps * batch / (time.perf_counter() - started)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--models", nargs="+", default=None, help="model names (default: all registered)")
    parser.add_argument("--batch", type=int, default=128)
    parser.add_argument("--steps", type=int, default=5)
    parser.add_argument("--threads", type=int, default=os.cpu_count() or 1)
    parser.add_argument("--out", default="benchmarks/results/train_speed.json")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    rows = []
    # `ensemble` is built from trained members, so it has no default form to time.
    for name in args.models or [m for m in list_models() if m != "ensemble"]:
        model = create_model(name)
        row = {"model": name, "params": count_params(model), "flops": count_flops(model)}
        for precision in ("fp32", "bf16"):
            row[f"images_per_second_{precision}"] = round(images_per_second(name, args.batch, args.steps, precision), 1)
            row[f"memory_format_{precision}"] = str(memory_format_for(model, precision)).removeprefix("torch.")
        print(f"{name:24s} {row['params']:>10,d} params {row['flops'] / 1e6:8.1f} MFLOPs  "
              f"fp32 {row['images_per_second_fp32']:7.1f} img/s  bf16 {row['images_per_second_bf16']:7.1f} img/s",
              flush=True)
        rows.append(row)
    result = {
        "benchmark": "train_speed", "command": "python benchmarks/train_speed.py " + " ".join(sys.argv[1:]),
        "batch": args.batch, "steps": args.steps, "threads": args.threads,
        "torch": torch.__version__, "cpu": platform.processor() or platform.machine(), "cores": os.cpu_count(),
        "cpu_bf16_flags": sorted(cpu_flags() & set(BF16_CPU_FLAGS)), "precision_auto": resolve_precision("auto"),
        "results": rows,
    }
    write_result(result, args.out)


if __name__ == "__main__":
    main()
