"""Thin helpers over `torch.distributed`, safe to call in a single process (world size 1)."""

from __future__ import annotations

import os

import torch
import torch.distributed as dist


def is_dist() -> bool:
    return dist.is_available() and dist.is_initialized()


def rank() -> int:
    return dist.get_rank() if is_dist() else 0


def world_size() -> int:
    return dist.get_world_size() if is_dist() else 1


def is_main() -> bool:
    return rank() == 0


def launched_by_torchrun() -> bool:
    """True when torchrun (or any launcher setting the env:// variables) started this process."""
    return "RANK" in os.environ and "WORLD_SIZE" in os.environ and "LOCAL_RANK" in os.environ


@torch.no_grad()
def all_gather_nograd(x: torch.Tensor) -> torch.Tensor:
    """Concatenate `x` from every rank in rank order (no gradient flows: for queue keys and shuffle-BN)."""
    if not is_dist() or world_size() == 1:
        return x
    out = [torch.empty_like(x) for _ in range(world_size())]
    dist.all_gather(out, x.contiguous())
    return torch.cat(out)


def broadcast(x: torch.Tensor, src: int = 0) -> torch.Tensor:
    if is_dist() and world_size() > 1:
        dist.broadcast(x, src)
    return x


def all_reduce_mean(x: torch.Tensor) -> torch.Tensor:
    """Mean of a tensor over ranks (for logging)."""
    if not is_dist() or world_size() == 1:
        return x
    x = x.clone()
    dist.all_reduce(x)
    return x / world_size()


def barrier() -> None:
    if is_dist() and world_size() > 1:
        dist.barrier()
