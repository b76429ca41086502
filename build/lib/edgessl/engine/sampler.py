"""Epoch-seeded global batches split into contiguous per-rank slices.

Every rank draws the same permutation (seed + epoch), cuts it into global batches, and takes slice `rank` of
each. Gathering the ranks' outputs in rank order therefore gives exactly the batch a single process with the
global batch would see, which is what makes N processes equivalent to one (and resume exact).
"""

from __future__ import annotations

from collections.abc import Iterator

import torch
from torch.utils.data import Sampler


class GlobalBatchSampler(Sampler[list[int]]):
    """Yields this rank's index list for each full global batch (the last partial batch is dropped)."""

    def __init__(self, n: int, global_batch: int, rank: int, world: int, seed: int) -> None:
        self.n, self.global_batch, self.rank, self.world, self.seed = n, global_batch, rank, world, seed
        self.local = global_batch // world
        self.epoch = 0
        self.start = 0  # batches of this epoch to skip (resuming mid-epoch)

    def set_epoch(self, epoch: int, start: int = 0) -> None:
        self.epoch, self.start = epoch, start

    def __len__(self) -> int:
        return self.n // self.global_batch - self.start

    def __iter__(self) -> Iterator[list[int]]:
        gen = torch.Generator().manual_seed(self.seed * 100_003 + self.epoch)
        perm = torch.randperm(self.n, generator=gen).tolist()
        for b in range(self.start, self.n // self.global_batch):
            lo = b * self.global_batch + self.rank * self.local
            yield perm[lo:lo + self.local]
