"""Data-parallel pieces of supernet training under torchrun: the process group, a
differentiable all-reduce and a BatchNorm that normalises with the statistics of the batch over
every rank.

Every rank draws the same subnets and takes its contiguous share of each global batch (global
batch B, B % N == 0); BatchNorm statistics are all-reduced across ranks during training
(`CrossRankBatchNorm2d`), so every rank normalises with the global batch's statistics exactly as
one process would; the gradients are summed over ranks by one all-reduce per step and divided by
N (`sandwich.sandwich_step`: the data-parallel all-reduce of DistributedDataParallel, done by
hand because a sandwich step runs 2 + k forward/backward passes and leaves the per-r kernels of
unsampled r without gradients, which DDP handles only with `find_unused_parameters` and
`no_sync`). gloo on CPUs, NCCL where CUDA exists (one GPU per rank, `LOCAL_RANK`).
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator
from typing import Any

import torch
from torch import nn


def rank_and_world() -> tuple[int, int]:
    """(rank, world size) of the initialised process group, (0, 1) without one."""
    if torch.distributed.is_available() and torch.distributed.is_initialized():
        return torch.distributed.get_rank(), torch.distributed.get_world_size()
    return 0, 1


class _SumOverRanks(torch.autograd.Function):
    """y = Σ_ranks x on every rank; the gradient of a sum is the sum of the ranks' gradients."""

    @staticmethod
    def forward(ctx: Any, x: torch.Tensor) -> torch.Tensor:
        y = x.clone()
        torch.distributed.all_reduce(y)
        return y

    @staticmethod
    def backward(ctx: Any, grad: torch.Tensor) -> torch.Tensor:
        grad = grad.clone()
        torch.distributed.all_reduce(grad)
        return grad


def all_reduce(x: torch.Tensor) -> torch.Tensor:
    """Differentiable sum of `x` over the ranks of the process group."""
    return _SumOverRanks.apply(x)


class CrossRankBatchNorm2d(nn.BatchNorm2d):
    """BatchNorm2d whose training statistics are those of the batch over every rank.

    Sums and sums of squares per channel and the pixel count are summed over ranks (with
    autograd, `all_reduce`), so N ranks with B/N images each normalise as one process with B
    images would (up to float rounding: E[x²] − E[x]² here). Running statistics are not
    updated: the supernet recalibrates them per subnet.
    """

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if not self.training:
            return super().forward(x)
        c = x.shape[1]
        count = x.new_full((1,), x.numel() // c)
        stats = torch.cat([x.sum(dim=(0, 2, 3)), (x * x).sum(dim=(0, 2, 3)), count])  # (2C+1,)
        stats = all_reduce(stats)
        n = stats[-1]
        mean = stats[:c] / n
        var = stats[c:2 * c] / n - mean * mean  # biased, as BatchNorm normalises
        scale = torch.rsqrt(var + self.eps) * self.weight
        shift = self.bias - mean * scale
        return x * scale[None, :, None, None] + shift[None, :, None, None]


def with_cross_rank_batchnorm(module: nn.Module) -> nn.Module:
    """`module` with every BatchNorm2d replaced by a CrossRankBatchNorm2d (same shapes)."""
    for name, child in module.named_children():
        if type(child) is nn.BatchNorm2d:
            setattr(module, name, CrossRankBatchNorm2d(child.num_features, eps=child.eps))
        else:
            with_cross_rank_batchnorm(child)
    return module


@contextlib.contextmanager
def process_group() -> Iterator[tuple[int, int, torch.device]]:
    """(rank, world, device): under torchrun (WORLD_SIZE > 1) a process group is started —
    NCCL and this rank's GPU where CUDA exists, else gloo on the CPU — and closed after."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    cuda = torch.cuda.is_available()
    device = torch.device("cpu")
    if cuda:
        device = torch.device("cuda", int(os.environ.get("LOCAL_RANK", "0")))
        torch.cuda.set_device(device)
    if world <= 1 or (torch.distributed.is_available() and torch.distributed.is_initialized()):
        rank, world = rank_and_world()
        yield rank, world, device
        return
    torch.distributed.init_process_group(backend="nccl" if cuda else "gloo")
    try:
        yield torch.distributed.get_rank(), torch.distributed.get_world_size(), device
    finally:
        torch.distributed.destroy_process_group()
