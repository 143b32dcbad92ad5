"""--precision auto: bf16 autocast only where the hardware computes bf16 natively.

Before: bf16 was the default everywhere, and on a CPU without AVX-512 BF16 or AMX (a 2-core AVX2 EPYC) PyTorch
emulates it: an optimizer step of VGG-16 took ~10x as long as in fp32, and a 30-epoch campaign training did
not finish its first epoch in 20 minutes.
"""

import json

import pytest

from nasfer.config import DataConfig, TrainConfig
from nasfer.nas.config import SearchConfig
from nasfer.train import fit
from nasfer.training.precision import cpu_flags, native_bf16, resolve_precision, run_precision, slow_bf16_warning

AVX2 = "processor\t: 0\nvendor_id\t: AuthenticAMD\nflags\t\t: fpu sse2 avx fma avx2\n"
AMX = "processor\t: 0\nflags\t\t: fpu avx2 avx512f avx512_bf16 amx_tile amx_bf16\n"
ARM = "processor\t: 0\nFeatures\t: fp asimd bf16\n"


def test_auto_picks_bf16_only_where_the_cpu_has_it():
    assert cpu_flags(AVX2) == {"fpu", "sse2", "avx", "fma", "avx2"}
    assert not native_bf16("cpu", AVX2) and native_bf16("cpu", AMX)
    assert resolve_precision("auto", "cpu", AVX2) == "fp32"
    assert resolve_precision("auto", "cpu", AMX) == "bf16"
    assert resolve_precision("auto", "cpu", ARM) == "fp32"  # no x86 bf16 flag: the safe choice
    assert resolve_precision("auto", "cpu", "") == "fp32"  # no /proc/cpuinfo (not Linux)
    assert resolve_precision("auto", "mps", AMX) == "fp32"


def test_an_explicit_precision_is_kept_and_bf16_without_hardware_is_named():
    assert resolve_precision("bf16", "cpu", AVX2) == "bf16" and resolve_precision("fp32", "cpu", AMX) == "fp32"
    assert "slower than fp32" in slow_bf16_warning("bf16", "cpu", AVX2)
    assert slow_bf16_warning("bf16", "cpu", AMX) is None and slow_bf16_warning("fp32", "cpu", AVX2) is None
    with pytest.raises(ValueError, match="auto, bf16, fp32"):
        resolve_precision("fp16", "cpu", AVX2)


def test_auto_is_the_default_of_train_and_search():
    assert TrainConfig().precision == "auto" and SearchConfig().precision == "auto"


def test_a_resumed_auto_run_keeps_the_precision_it_started_with(tmp_path):
    cfg = TrainConfig(out=str(tmp_path), precision="auto", device="cpu")
    (tmp_path / "config.json").write_text(json.dumps({"train": {"precision": "bf16"}}))
    assert run_precision(cfg, tmp_path) == resolve_precision("auto", "cpu")  # no last.pt: a new run resolves
    (tmp_path / "last.pt").write_bytes(b"")
    assert run_precision(cfg, tmp_path) == "bf16"  # being resumed: its own, whatever this machine resolves
    assert run_precision(TrainConfig(out=str(tmp_path), precision="fp32"), tmp_path) == "fp32"  # explicit wins


def test_a_run_records_the_precision_it_trained_at(learnable_folder, tmp_path):
    run = fit(TrainConfig(arch="vgg", width=4, epochs=1, batch_size=32, limit=70, out=str(tmp_path / "run")),
              DataConfig(data=str(learnable_folder)), progress=False)
    saved = json.loads((run / "config.json").read_text())["train"]["precision"]
    assert saved == resolve_precision("auto", "cpu") and saved in ("bf16", "fp32")
