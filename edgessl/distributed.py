"""Thin helpers over `torch.distributed`, safe to call in a single process (world size 1)."""

from __future__ import annotations

import os

import torch
import torch.distributed as dist


_SHARED = torch.Generator()  # CPU; advanced identically on every rank


def shared_generator() -> torch.Generator:
    """A CPU generator in the same state on every rank (the engine reseeds it each step with `seed_shared`), for
    draws all ranks must agree on without a broadcast or a host-device sync (the shuffle-BN permutation)."""
    return _SHARED


def seed_shared(seed: int) -> None:
    _SHARED.manual_seed(seed)


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


@torch.no_grad()
def all_gather_uneven(x: torch.Tensor) -> torch.Tensor:
    """Concatenate `x` from every rank in rank order when the ranks' first dimensions differ (a dataset shard)."""
    if not is_dist() or world_size() == 1:
        return x
    sizes = all_gather_nograd(torch.tensor([len(x)], device=x.device)).tolist()
    padded = torch.zeros((max(sizes), *x.shape[1:]), dtype=x.dtype, device=x.device)
    padded[:len(x)] = x
    parts = all_gather_nograd(padded).split(max(sizes))
    return torch.cat([part[:n] for part, n in zip(parts, sizes)])


@torch.no_grad()
def all_to_all(x: torch.Tensor, send_counts: list[int], recv_counts: list[int]) -> torch.Tensor:
    """Send rows `x[sum(send_counts[:r]):...]` to rank r; return the rows received, in rank order."""
    out = x.new_empty((sum(recv_counts), *x.shape[1:]))
    dist.all_to_all_single(out, x.contiguous(), recv_counts, send_counts)
    return out


def all_reduce_max(x: torch.Tensor) -> torch.Tensor:
    """Element-wise maximum over ranks."""
    if not is_dist() or world_size() == 1:
        return x
    x = x.clone()
    dist.all_reduce(x, op=dist.ReduceOp.MAX)
    return x


def shard(n: int) -> range:
    """This rank's contiguous part of `range(n)` (sizes differ by at most one): concatenating the ranks' parts in
    rank order gives `range(n)` back."""
    lo, hi = n * rank() // world_size(), n * (rank() + 1) // world_size()
    return range(lo, hi)


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
