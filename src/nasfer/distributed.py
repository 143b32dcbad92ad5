"""Data-parallel training with PyTorch's own launcher: `torchrun --nproc_per_node N -m nasfer train ...`.

torchrun starts N processes and sets RANK, WORLD_SIZE, LOCAL_RANK, MASTER_ADDR and MASTER_PORT (across
machines, its rendezvous does: `--nnodes 2 --rdzv-backend c10d --rdzv-endpoint HOST:PORT`). `session()`
reads them, joins the process group (gloo on CPU, NCCL on CUDA GPUs, one GPU per local rank) and gives the
training pipeline a `Context`; without them it is one process and every hook below is the identity.

What the hooks guarantee (PyTorch DistributedDataParallel, Li et al. 2020, VLDB):
- the GLOBAL batch is --batch-size, as in one process; each rank takes batch/N images of it (`shard`):
  every rank draws the same seeded per-epoch order and augmentation and keeps positions rank, rank+N, ...,
  which is torch's DistributedSampler sharding applied to each global batch, so N processes train on the
  exact batches one process would;
- gradients are averaged across ranks by DDP and BatchNorm statistics are computed over the global batch
  (torch's SyncBatchNorm on GPUs; on CPUs, where it is not available, `AllReduceBatchNorm2d`): the first
  step's gradients equal one process's on the same global batch;
- validation is sharded and its sums reduced (`sum`), so every rank sees the global metrics;
- rank 0 alone writes checkpoints, logs, plots and caches; resuming reads rank 0's last.pt on every rank.
"""

from __future__ import annotations

import os
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Iterator, Sequence

import torch
import torch.distributed as dist
from torch import nn


@dataclass(frozen=True)
class Context:
    """Where this process stands in a data-parallel run (rank 0 of 1 when not distributed)."""

    rank: int = 0
    world: int = 1
    local_rank: int = 0
    backend: str | None = None

    @property
    def is_main(self) -> bool:
        """This process writes the run's files and prints its log."""
        return self.rank == 0

    @property
    def active(self) -> bool:
        return self.world > 1

    def shard(self) -> slice:
        """This rank's positions in a global batch: rank, rank + world, ..."""
        return slice(self.rank, None, self.world) if self.active else slice(None)

    def sum(self, values: Sequence[float]) -> list[float]:
        """Element-wise sum of `values` over all ranks (float64); the values themselves in one process."""
        if not self.active:
            return [float(v) for v in values]
        t = torch.tensor(list(values), dtype=torch.float64)
        if self.backend == "nccl":
            t = t.cuda(self.local_rank)
        dist.all_reduce(t)
        return t.cpu().tolist()

    def barrier(self) -> None:
        if self.active:
            dist.barrier()

    def device(self, device: str) -> str:
        """The torch device of this rank: `cuda` becomes `cuda:<local rank>`."""
        if self.active and device == "cuda":
            return f"cuda:{self.local_rank}"
        return device

    def check_batch(self, batch_size: int) -> int:
        """Images per rank for a global batch; ValueError when the global batch does not split evenly."""
        if batch_size % self.world:
            raise ValueError(f"--batch-size {batch_size} is the global batch: it must be a multiple of the "
                             f"{self.world} processes")
        return batch_size // self.world

    def prepare(self, model: nn.Module) -> nn.Module:
        """Before the optimizer and EMA are built: BatchNorm layers computing global-batch statistics."""
        if not self.active:
            return model
        if self.backend == "nccl":
            return nn.SyncBatchNorm.convert_sync_batchnorm(model)
        return convert_batchnorm(model)

    def wrap(self, model: nn.Module) -> nn.Module:
        """The module the training step calls: DistributedDataParallel around `model`, or `model` itself.

        Wrap again whenever the set of trainable parameters changes (fine-tuning's frozen epochs): DDP
        registers the parameters that require gradients when it is built.
        """
        if not self.active:
            return model
        from torch.nn.parallel import DistributedDataParallel

        ids = [self.local_rank] if self.backend == "nccl" else None
        return DistributedDataParallel(model, device_ids=ids)


class _AllReduceSum(torch.autograd.Function):
    """Sum over ranks, differentiable: the gradient of every rank's input is the sum of the output gradients."""

    @staticmethod
    def forward(ctx, tensor: torch.Tensor) -> torch.Tensor:  # noqa: ARG004 (autograd's context)
        out = tensor.clone()
        dist.all_reduce(out)
        return out

    @staticmethod
    def backward(ctx, grad: torch.Tensor) -> torch.Tensor:  # noqa: ARG004
        out = grad.clone()
        dist.all_reduce(out)
        return out


def is_main_process() -> bool:
    """Whether this process is rank 0 of its run (always, outside torchrun)."""
    return int(os.environ.get("RANK", "0")) == 0


class AllReduceBatchNorm2d(nn.BatchNorm2d):
    """BatchNorm2d whose training statistics are those of the global batch across ranks (any device).

    Same parameters, buffers and state-dict keys as nn.BatchNorm2d (checkpoints stay interchangeable).
    In training, per-channel sums and sums of squares are summed over ranks by a differentiable all-reduce,
    as torch's SyncBatchNorm does on GPUs (Peng et al. 2018, MegDet, "cross-GPU batch normalization");
    running statistics are updated with the unbiased global variance, as BatchNorm2d does.
    """

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if not (self.training and dist.is_available() and dist.is_initialized() and dist.get_world_size() > 1):
            return super().forward(x)
        c = x.shape[1]
        xf = x.float()
        count = torch.tensor([xf.numel() / c], dtype=torch.float32, device=x.device)
        stats = _AllReduceSum.apply(torch.cat([xf.sum((0, 2, 3)), (xf * xf).sum((0, 2, 3)), count]))
        n = stats[-1]
        mean = stats[:c] / n
        var = (stats[c:2 * c] / n - mean * mean).clamp_min(0.0)
        if self.track_running_stats and self.running_mean is not None:
            with torch.no_grad():
                self.num_batches_tracked.add_(1)
                m = self.momentum if self.momentum is not None else 1.0 / float(self.num_batches_tracked)
                self.running_mean.mul_(1 - m).add_(mean.detach(), alpha=m)
                self.running_var.mul_(1 - m).add_((var * n / (n - 1).clamp_min(1)).detach(), alpha=m)
        y = (xf - mean.view(1, c, 1, 1)) * torch.rsqrt(var.view(1, c, 1, 1) + self.eps)
        if self.affine:
            y = y * self.weight.view(1, c, 1, 1) + self.bias.view(1, c, 1, 1)
        return y.to(x.dtype)


def convert_batchnorm(module: nn.Module) -> nn.Module:
    """`module` with every nn.BatchNorm2d replaced, in place, by an AllReduceBatchNorm2d sharing its tensors."""
    if type(module) is nn.BatchNorm2d:
        new = AllReduceBatchNorm2d(module.num_features, module.eps, module.momentum, module.affine,
                                   module.track_running_stats)
        if module.affine:
            new.weight, new.bias = module.weight, module.bias
        new.running_mean, new.running_var = module.running_mean, module.running_var
        new.num_batches_tracked = module.num_batches_tracked
        new.train(module.training)
        return new
    for name, child in module.named_children():
        module.add_module(name, convert_batchnorm(child))
    return module


def from_environment(device: str = "cpu") -> tuple[Context, bool]:
    """(Context from torchrun's environment, whether this call joined the process group).

    Joins with gloo for CPU training and NCCL for `--device cuda`; a run already in a process group
    (e.g. started by a test with torch.multiprocessing) is used as it is.
    """
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world <= 1:
        return Context(), False
    rank, local_rank = int(os.environ.get("RANK", "0")), int(os.environ.get("LOCAL_RANK", "0"))
    joined = False
    if not dist.is_initialized():
        backend = "nccl" if device.startswith("cuda") else "gloo"
        if backend == "nccl":
            torch.cuda.set_device(local_rank)
        dist.init_process_group(backend=backend)
        joined = True
    return Context(rank=rank, world=world, local_rank=local_rank, backend=dist.get_backend()), joined


@contextmanager
def session(device: str = "cpu") -> Iterator[Context]:
    """The run's Context; leaves the process group it joined when the run ends."""
    ctx, joined = from_environment(device)
    try:
        yield ctx
    finally:
        if joined and dist.is_initialized():
            dist.destroy_process_group()


__all__ = ["Context", "AllReduceBatchNorm2d", "convert_batchnorm", "from_environment", "is_main_process", "session"]
