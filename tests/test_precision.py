"""--precision auto: bf16 autocast only where the hardware computes bf16 natively.

Before: bf16 was the default everywhere, and on a CPU without AVX-512 BF16 or AMX (a 2-core AVX2 EPYC) PyTorch
emulates it: an optimizer step of VGG-16 took ~10x as long as in fp32, and a 30-epoch campaign training did
not finish its first epoch in 20 minutes.
"""

import dataclasses
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


@pytest.mark.parametrize("native", [True, False])
def test_a_resumed_auto_run_keeps_the_precision_it_started_with(tmp_path, monkeypatch, native):
    import nasfer.checkpoint
    import nasfer.training.precision as precision

    monkeypatch.setattr(precision, "native_bf16", lambda device="cpu", cpuinfo=None: native)
    started = "fp32" if native else "bf16"  # the other machine's choice
    monkeypatch.setattr(nasfer.checkpoint, "load_checkpoint",
                        lambda path: {"config": {"train": {"precision": started}}})
    cfg = TrainConfig(out=str(tmp_path), precision="auto", device="cpu")
    here = "bf16" if native else "fp32"
    assert run_precision(cfg, tmp_path) == here  # no last.pt: a new run resolves on this machine
    (tmp_path / "last.pt").write_bytes(b"")
    assert run_precision(cfg, tmp_path) == started  # being resumed: its own, whatever this machine resolves
    assert run_precision(TrainConfig(out=str(tmp_path), precision=here), tmp_path) == here  # explicit wins


def test_a_resumed_search_keeps_its_childrens_precision(tmp_path, monkeypatch):
    """Before: a search stored "auto" and each child resolved it again, so a search moved to another kind of
    machine changed its children's recipe part-way, and one saved with "bf16" (the old default) was refused."""
    import nasfer.training.precision as precision
    from nasfer.nas.search import search

    def evaluate(spec, fidelity):
        return 0.5

    cfg = SearchConfig(out=str(tmp_path / "s"), strategy="random", space="macro", rungs=("2s@16",), max_children=2,
                       budget_minutes=1, latency_target_ms=0, max_latency_ms=0, progress=False, precision="auto")
    monkeypatch.setattr(precision, "native_bf16", lambda device="cpu", cpuinfo=None: True)
    first = search(cfg, evaluate, latency=lambda name, kwargs: {"ms_per_face_b1": 0.1, "ms_per_face_b64": 0.1})
    assert first.summary["config"]["precision"] == "bf16"
    monkeypatch.setattr(precision, "native_bf16", lambda device="cpu", cpuinfo=None: False)  # another machine
    again = search(dataclasses.replace(cfg, max_children=3), evaluate,
                   latency=lambda name, kwargs: {"ms_per_face_b1": 0.1, "ms_per_face_b64": 0.1})
    assert again.summary["config"]["precision"] == "bf16" and again.summary["children"] == 3


def test_a_run_records_the_precision_it_trained_at(learnable_folder, tmp_path):
    run = fit(TrainConfig(arch="vgg", width=4, epochs=1, batch_size=32, limit=70, out=str(tmp_path / "run")),
              DataConfig(data=str(learnable_folder)), progress=False)
    saved = json.loads((run / "config.json").read_text())["train"]["precision"]
    assert saved == resolve_precision("auto", "cpu") and saved in ("bf16", "fp32")
