"""The device and autocast precision of training steps: `--device` is checked before any work, and
`--precision auto` picks bf16 only where the hardware has it.

bf16 autocast pays on CPUs with native bf16 arithmetic (AVX-512 BF16 or AMX: the README's training-speed
table, 1.7x for VGG-32 there) and costs a great deal on CPUs without it, where PyTorch emulates it (measured
on a 2-core AVX2 AMD EPYC: one AdamW step of VGG-16 at batch 128 took about 14 s in bf16 against 1.4 s in
fp32; `benchmarks/train_speed.py` measures a machine). On CUDA, bf16 where the GPU supports it.
"""

from __future__ import annotations

from pathlib import Path

#: The values of `--precision`.
PRECISIONS = ("auto", "bf16", "fp32")
#: /proc/cpuinfo flags of native bf16 arithmetic (AVX-512 BF16; AMX with bf16 tiles).
BF16_CPU_FLAGS = ("avx512_bf16", "amx_bf16")


def cpu_flags(cpuinfo: str | None = None) -> set[str]:
    """The CPU's feature flags from the text of /proc/cpuinfo (read when `cpuinfo` is None); empty where
    there is no such file (not Linux)."""
    if cpuinfo is None:
        try:
            cpuinfo = Path("/proc/cpuinfo").read_text(encoding="utf-8", errors="replace")
        except OSError:
            return set()
    for line in cpuinfo.splitlines():
        key, _, value = line.partition(":")
        if key.strip() in ("flags", "Features"):
            return set(value.split())
    return set()


def native_bf16(device: str = "cpu", cpuinfo: str | None = None) -> bool:
    """Whether `device` ("cpu", "cuda", "cuda:1", ...) computes bf16 natively."""
    kind, _, index = device.partition(":")
    if kind == "cuda":
        import torch

        if not torch.cuda.is_available():
            return False
        # native bf16 from compute capability 8.0 (Ampere); is_bf16_supported() also counts emulation
        return torch.cuda.get_device_properties(int(index or torch.cuda.current_device())).major >= 8
    if kind == "cpu":
        return bool(cpu_flags(cpuinfo) & set(BF16_CPU_FLAGS))
    return False


def resolve_precision(precision: str, device: str = "cpu", cpuinfo: str | None = None) -> str:
    """"bf16" or "fp32": `precision` itself, or for "auto" bf16 where `native_bf16(device)`, else fp32.

    Raises ValueError for a value outside PRECISIONS.
    """
    if precision not in PRECISIONS:
        raise ValueError(f"--precision {precision!r}: use one of {', '.join(PRECISIONS)}")
    if precision != "auto":
        return precision
    return "bf16" if native_bf16(device, cpuinfo) else "fp32"


def run_precision(cfg, out: Path) -> str:
    """The autocast precision of a training run (`cfg`: a TrainConfig with its device resolved): its
    --precision, "auto" resolved for `cfg.device`; a run being resumed (`out` holds last.pt) keeps the
    precision it started with (the config in its last.pt), so the same command continues it on a machine that would
    resolve "auto" otherwise."""
    if cfg.precision == "auto" and (Path(out) / "last.pt").is_file():
        from ..checkpoint import load_checkpoint

        try:  # the config the resume check compares with
            saved = load_checkpoint(Path(out) / "last.pt")["config"]["train"]["precision"]
        except Exception:  # noqa: BLE001  (an unreadable last.pt is reported by the resume itself)
            saved = None
        if saved in ("bf16", "fp32"):
            return saved
    return resolve_precision(cfg.precision, cfg.device)


def slow_bf16_warning(precision: str, device: str = "cpu", cpuinfo: str | None = None) -> str | None:
    """A one-line warning when bf16 autocast runs on a device that only emulates it; None otherwise."""
    if precision != "bf16" or native_bf16(device, cpuinfo):
        return None
    what = "GPU without native bf16 (before Ampere)" if device.startswith("cuda") else \
        "CPU without native bf16 (no AVX-512 BF16 or AMX)"
    return (f"note: bf16 autocast on a {what} is emulated and several times slower than fp32 (a run started "
            "in bf16 continues in it; a new run with --precision auto or fp32 trains in fp32)")


def check_device(name: str) -> None:
    """ValueError (one line, naming --device) unless torch can train on device `name` here: cpu, or cuda[:N]
    with a CUDA GPU that PyTorch sees (before: a traceback from the first `.to(device)`, after the dataset was
    read)."""
    import torch

    try:
        device = torch.device(name)
    except (RuntimeError, TypeError) as exc:
        raise ValueError(f"--device {name}: not a torch device ({str(exc).strip()[:120]}); use cpu or cuda") from None
    if device.type == "cpu":
        return
    if device.type != "cuda":
        raise ValueError(f"--device {name}: nasfer trains on cpu or cuda (a CUDA GPU), not {device.type}")
    if not torch.cuda.is_available():
        build = f"CUDA {torch.version.cuda}" if torch.version.cuda else "a CPU-only build"
        raise ValueError(f"--device {name}: PyTorch here ({torch.__version__}, {build}) sees no CUDA GPU; train "
                         "with --device cpu, or install a CUDA build of PyTorch on a machine with a GPU")
    if device.index is not None and device.index >= torch.cuda.device_count():
        raise ValueError(f"--device {name}: there are {torch.cuda.device_count()} CUDA GPU(s), numbered from 0")


__all__ = ["PRECISIONS", "BF16_CPU_FLAGS", "check_device", "cpu_flags", "native_bf16", "resolve_precision", "run_precision", "slow_bf16_warning"]
