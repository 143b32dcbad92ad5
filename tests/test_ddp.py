"""Data-parallel training (nasfer.distributed) with two gloo processes on this CPU."""

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.distributed as dist
import torch.multiprocessing as mp
from torch import nn

from nasfer.checkpoint import load_model
from nasfer.data import read_dataset
from nasfer.data.augment import Augment
from nasfer.distributed import AllReduceBatchNorm2d, Context
from nasfer.models import create_model
from nasfer.preprocessing import Preprocessing
from nasfer.train import evaluate_model
from nasfer.training.loop import batch_loss, make_batch

HERE = Path(__file__).resolve().parent
SRC = HERE.parent / "src"
TORCHRUN = shutil.which("torchrun")


def first_step(ctx: Context) -> dict[str, torch.Tensor]:
    """Gradients and BatchNorm statistics after one training step on a fixed global batch of 16 images."""
    torch.manual_seed(0)
    model = ctx.prepare(create_model("vgg", num_classes=7, in_channels=1, width=4, dropout=0.0))
    net = ctx.wrap(model)
    rng = np.random.default_rng(0)
    train_x = torch.from_numpy(rng.integers(0, 256, (16, 1, 48, 48), dtype=np.uint8))
    train_y = torch.from_numpy(rng.integers(0, 7, 16))
    augment = Augment(crop_padding=4, flip=True, rotation=10.0, scale=0.1, random_erasing=0.5)
    batch = make_batch(torch.randperm(16, generator=torch.Generator().manual_seed(1)), train_x, train_y, augment,
                       torch.Generator().manual_seed(2), Preprocessing(), mixup=0.4, shard=ctx.shard())
    model.train()
    loss, _ = batch_loss(net, batch, nn.CrossEntropyLoss(label_smoothing=0.1))
    loss.backward()
    out = {f"grad:{n}": p.grad.detach().clone() for n, p in model.named_parameters()}
    out.update({f"buffer:{n}": b.detach().clone() for n, b in model.named_buffers()})
    out["local_batch"] = torch.tensor(len(batch.y))
    return out


def _grad_worker(rank: int, world: int, init_file: str, out: str) -> None:
    torch.set_num_threads(1)
    dist.init_process_group("gloo", init_method=f"file://{init_file}", rank=rank, world_size=world)
    try:
        torch.save(first_step(Context(rank=rank, world=world, backend="gloo")), f"{out}.{rank}")
    finally:
        dist.destroy_process_group()


@pytest.mark.slow
def test_first_step_gradients_equal_one_process_on_the_same_global_batch(tmp_path):
    single = first_step(Context())
    mp.spawn(_grad_worker, args=(2, str(tmp_path / "init"), str(tmp_path / "grads")), nprocs=2, join=True)
    ranks = [torch.load(tmp_path / f"grads.{r}") for r in range(2)]
    assert int(single["local_batch"]) == 16 and [int(r["local_batch"]) for r in ranks] == [8, 8]
    for name, value in single.items():
        if name == "local_batch":
            continue
        for r in ranks:  # DDP leaves every rank with the same averaged gradients and global-batch statistics
            torch.testing.assert_close(r[name].to(value.dtype), value, rtol=1e-3, atol=1e-5, msg=name)
    assert any(isinstance(m, nn.BatchNorm2d) for m in create_model("vgg", width=4).modules())


def test_allreduce_batchnorm_keeps_the_checkpoint_format():
    from nasfer.distributed import convert_batchnorm

    plain = create_model("vgg", width=4)
    keys = list(plain.state_dict())
    converted = convert_batchnorm(create_model("vgg", width=4))
    assert list(converted.state_dict()) == keys
    assert any(isinstance(m, AllReduceBatchNorm2d) for m in converted.modules())
    x = torch.randn(4, 1, 48, 48)
    plain.load_state_dict(converted.state_dict())
    outputs = []
    for model in (converted, plain):
        torch.manual_seed(3)  # the same dropout mask
        outputs.append(model.train()(x))
    torch.testing.assert_close(*outputs)  # one process: plain BatchNorm


def torchrun(args: list[str], tmp_path: Path, *, audit: bool = False, interrupt: int = 0, log_dir: Path | None = None):
    env = {**os.environ, "PYTHONPATH": f"{SRC}{os.pathsep}{os.environ.get('PYTHONPATH', '')}", "OMP_NUM_THREADS": "1"}
    if audit:
        env["NASFER_TEST_AUDIT"] = str(tmp_path / "audit")
    if interrupt:
        env["NASFER_TEST_INTERRUPT"] = str(interrupt)
    logs = ["--log-dir", str(log_dir), "--redirects", "3"] if log_dir else []
    cmd = [TORCHRUN, "--standalone", "--nproc_per_node", "2", *logs, str(HERE / "ddp_launch.py"), "train", *args]
    return subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=300)


@pytest.mark.slow
@pytest.mark.skipif(TORCHRUN is None, reason="torchrun (installed with torch) is not on PATH")
def test_two_processes_learn_resume_exactly_and_only_rank_0_writes(learnable_folder, tmp_path):
    flags = ["--data", str(learnable_folder), "--width", "8", "--epochs", "5", "--batch-size", "32", "--lr", "5e-3",
             "--rotation", "0", "--scale", "0", "--crop-padding", "2", "--val-fraction", "0.15", "--seed", "1",
             "--threads", "1"]
    straight = tmp_path / "straight"
    done = torchrun([*flags, "--out", str(straight)], tmp_path, audit=True, log_dir=tmp_path / "logs")
    assert done.returncode == 0, done.stderr[-3000:]

    # it learns: far above chance (1/7) on the held-out test folder
    model, ckpt = load_model(straight / "best.pt")
    test = read_dataset(learnable_folder).select_split("test")
    probs = evaluate_model(model, test.images, Preprocessing.from_dict(ckpt["preprocessing"]), tta=True)
    accuracy = float((probs.argmax(1) == test.labels).mean())
    assert accuracy > 0.6, f"accuracy {accuracy:.2f} where chance is 0.14"
    config = json.loads((straight / "config.json").read_text())
    assert config["distributed"] == {"processes": 2, "backend": "gloo", "global_batch": 32, "batch_per_process": 16}
    assert len(json.loads((straight / "history.json").read_text())) == 5

    # rank 1 wrote nothing and printed nothing; rank 0 logged the run
    writes = json.loads((tmp_path / "audit.1").read_text())
    assert not [w for w in writes if str(tmp_path) in w[1] and "audit" not in w[1] and "/logs/" not in w[1]], writes
    outputs = {p.parent.name: p.read_text() for p in (tmp_path / "logs").rglob("stdout.log")}
    assert set(outputs) == {"0", "1"} and outputs["1"].strip() == ""
    assert "global batch 32 = 2 x 16" in outputs["0"] and "epoch 5/5" in outputs["0"]

    # killed during epoch 3, then the same command again: the same weights as the uninterrupted run
    resumed = tmp_path / "resumed"
    killed = torchrun([*flags, "--out", str(resumed)], tmp_path, interrupt=3)
    assert killed.returncode != 0
    assert [h["epoch"] for h in json.loads((resumed / "history.json").read_text())] == [1, 2]
    again = torchrun([*flags, "--out", str(resumed)], tmp_path)
    assert again.returncode == 0, again.stderr[-3000:]
    assert "resuming after epoch 2" in again.stdout
    a = torch.load(straight / "last.pt", weights_only=False)
    b = torch.load(resumed / "last.pt", weights_only=False)
    assert a["epoch"] == b["epoch"] == 4
    for key in a["state_dict"]:
        assert torch.equal(a["state_dict"][key], b["state_dict"][key]), key
    assert [h["val_acc"] for h in a["history"]] == [h["val_acc"] for h in b["history"]]


def test_global_batch_must_split_evenly_and_one_process_is_the_identity():
    ctx = Context(rank=1, world=2, backend="gloo")
    assert ctx.check_batch(128) == 64 and ctx.shard() == slice(1, None, 2) and not ctx.is_main
    with pytest.raises(ValueError, match="multiple of the 2 processes"):
        ctx.check_batch(33)
    single = Context()
    model = create_model("vgg", width=4)
    assert single.prepare(model) is model and single.wrap(model) is model and single.sum([1.5, 2]) == [1.5, 2.0]


def test_python_dash_m_nasfer_is_the_cli():
    done = subprocess.run([sys.executable, "-m", "nasfer", "train", "--help"], capture_output=True, text=True,
                          env={**os.environ, "PYTHONPATH": str(SRC)}, timeout=120)
    assert done.returncode == 0 and "--teacher" in done.stdout and "global batch size" in done.stdout
