"""Training speed in contiguous vs channels-last memory, fp32, one thread: what `memory_format_for` buys.

For each registered model (`--models`) and architecture file (`--architectures`, e.g. a search's
best_arch.json), times full training steps (forward, backward, AdamW) at 48x48 in both memory formats and
records the format `nasfer train` picks (`nasfer.training.model.memory_format_for`). Where that rule keeps a
model contiguous because channels-last would hit a torch 2.13 CPU bug, channels-last is not run (it can
corrupt the heap) and the row says so. A microbenchmark times the backward pass of one 7x7 depthwise conv.
Usage:

    python benchmarks/memory_format.py --models vgg mini-xception \\
        --architectures benchmarks/campaigns/issue11/search-*/best_arch.json \\
        --out benchmarks/results/memory_format.json
"""

from __future__ import annotations

import argparse
import os
import platform
import sys
from pathlib import Path

import torch
import torch.nn.functional as F

from nasfer.models import create_model
from nasfer.models.baselines import count_params
from nasfer.nas.space import model_from_file
from nasfer.training.model import memory_format_for

from common import timeit, write_result

FORMATS = {"contiguous": torch.contiguous_format, "channels_last": torch.channels_last}


def step_seconds(model: torch.nn.Module, fmt: torch.memory_format, batch: int, seconds: float) -> dict[str, float]:
    """Median seconds of one fp32 training step of `model` on a (batch, 1, 48, 48) input in `fmt`."""
    torch.manual_seed(0)
    model = model.to(memory_format=fmt).train()
    opt = torch.optim.AdamW(model.parameters(), lr=1e-3)
    x = torch.randn(batch, 1, 48, 48).to(memory_format=fmt)
    y = torch.randint(0, 7, (batch,))

    def step() -> None:
        opt.zero_grad(set_to_none=True)
        F.cross_entropy(model(x), y).backward()
        opt.step()

    return timeit(step, seconds, min_runs=3)


def depthwise_backward(fmt: torch.memory_format, seconds: float) -> dict[str, float]:
    """Median seconds of forward + backward of a 7x7 depthwise conv on (64, 64, 24, 24) in `fmt`."""
    x = torch.randn(64, 64, 24, 24).to(memory_format=fmt).requires_grad_()
    conv = torch.nn.Conv2d(64, 64, 7, padding=3, groups=64, bias=False).to(memory_format=fmt)
    return timeit(lambda: conv(x).sum().backward(), seconds, min_runs=3)


def model_row(label: str, model: torch.nn.Module, batch: int, seconds: float) -> dict:
    picked = memory_format_for(model, "fp32")
    row: dict = {"model": label, "params": count_params(model),
                 "picked": "channels_last" if picked == torch.channels_last else "contiguous"}
    seconds_per_step = {}
    for name, fmt in FORMATS.items():
        if fmt == torch.channels_last and picked != torch.channels_last:
            row[name] = None
            row["channels_last_skipped"] = "memory_format_for keeps it contiguous (torch 2.13 CPU backward bug)"
            continue
        timing = step_seconds(model, fmt, batch, seconds)
        seconds_per_step[name] = timing["median_s"]
        row[name] = {"s_per_step": round(timing["median_s"], 4), "images_per_second": round(batch / timing["median_s"], 1),
                     "runs": timing["runs"], "cpu_per_wall": round(timing["cpu_per_wall"], 2)}
    if row["channels_last"]:
        row["speedup"] = round(seconds_per_step["contiguous"] / seconds_per_step["channels_last"], 2)
    print(f"{label:40s} picked {row['picked']:13s} contiguous {row['contiguous']['images_per_second']:7.1f} img/s"
          + (f"  channels_last {row['channels_last']['images_per_second']:7.1f} img/s  x{row['speedup']}"
             if row["channels_last"] else ""), flush=True)
    return row


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--models", nargs="*", default=["vgg", "mini-xception"], help="registered model names")
    parser.add_argument("--architectures", nargs="*", default=[], help="architecture files (genotype or macro spec)")
    parser.add_argument("--batch", type=int, default=64)
    parser.add_argument("--seconds", type=float, default=3.0, help="time spent per measurement")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--out", default="benchmarks/results/memory_format.json")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    rows = [model_row(name, create_model(name), args.batch, args.seconds) for name in args.models]
    for path in args.architectures:
        name, kwargs = model_from_file(path)
        label = f"{Path(path).parent.name}/{Path(path).name}"
        rows.append(model_row(label, create_model(name, num_classes=7, in_channels=1, **kwargs), args.batch, args.seconds))
    depthwise = {name: round(depthwise_backward(fmt, args.seconds)["median_s"] * 1000, 1) for name, fmt in FORMATS.items()}
    print(f"7x7 depthwise conv forward+backward on (64, 64, 24, 24): {depthwise} ms", flush=True)
    write_result({
        "benchmark": "memory_format", "command": "python benchmarks/memory_format.py " + " ".join(sys.argv[1:]),
        "batch": args.batch, "threads": args.threads, "precision": "fp32", "torch": torch.__version__,
        "cpu": platform.processor() or platform.machine(), "cores": os.cpu_count(),
        "depthwise_7x7_ms": depthwise, "results": rows,
    }, args.out)


if __name__ == "__main__":
    main()
