"""Augmentation alone, both ReSSL views: images/s of the per-image torchvision v2 pipeline vs the batched one
(issue 8, part 1), on this CPU, for mobilenetv3-style inputs: 32 px from 32 px images, 224 px from 256 px.

    python benchmarks/augment_speed.py                 # ~3 s per measurement
    python benchmarks/augment_speed.py --seconds 10

- per-image: `TwoViews(weak_transform, strong_transform)` on PIL images made from decoded uint8 arrays
  (what the datasets return), through a DataLoader with `--workers` processes (1 torch thread each).
- batched: `BatchedTwoViews` on collated uint8 batches in this process (`--threads` torch threads; the
  default 1 because on this shared, oversubscribed 2-core VM a second intra-op thread makes every op wait
  for a descheduled thread and runs ~10-30x slower), first with glibc's default allocator, then with
  `mallopt` keeping freed memory in the heap: large tensors otherwise go back to the OS on free and
  page-fault on every reuse, which is slow in this VM. (GPU servers: CUDA's caching allocator avoids this.)
Random pixels stand in for photos (the ops' cost does not depend on content). The machine is shared, so
numbers are indicative. Prints a Markdown table.
"""

from __future__ import annotations

import argparse
import ctypes
import time
from typing import Callable

import numpy as np
import torch
from PIL import Image
from torch.utils.data import DataLoader, Dataset

from edgessl.data.batched_augment import BatchedTwoViews
from edgessl.data.transforms import TwoViews, strong_transform, weak_transform

CASES = [(32, 32, 256), (256, 224, 64)]  # (image side, output side, batch size)
M_TRIM_THRESHOLD, M_MMAP_THRESHOLD = -1, -3  # glibc mallopt parameters


class _Pictures(Dataset):
    """`n` random decoded images served as PIL images, with a per-image transform."""

    def __init__(self, n: int, side: int, transform: Callable) -> None:
        self.arrays = np.random.default_rng(0).integers(0, 256, (n, side, side, 3), dtype=np.uint8)
        self.transform = transform

    def __len__(self) -> int:
        return len(self.arrays)

    def __getitem__(self, index: int) -> tuple[torch.Tensor, torch.Tensor]:
        return self.transform(Image.fromarray(self.arrays[index]))


def _rate(step: Callable[[], int], seconds: float) -> float:
    """Images/s of repeated `step()` calls (each returns its image count) after one warm-up call."""
    step()
    done, start = 0, time.perf_counter()
    while time.perf_counter() - start < seconds:
        done += step()
    return done / (time.perf_counter() - start)


def per_image(side: int, size: int, batch: int, workers: int, seconds: float) -> float:
    data = _Pictures(batch * 8, side, TwoViews(weak_transform(size), strong_transform(size)))
    loader = DataLoader(data, batch_size=batch, num_workers=workers, persistent_workers=workers > 0)
    batches = iter(())

    def step() -> int:
        nonlocal batches
        views = next(batches, None)
        if views is None:
            batches = iter(loader)
            views = next(batches)
        return len(views[0])

    return _rate(step, seconds)


def batched(side: int, size: int, batch: int, seconds: float) -> float:
    images = torch.randint(0, 256, (batch, 3, side, side), dtype=torch.uint8)
    augment = BatchedTwoViews(size, "cpu", seed=0)
    return _rate(lambda: len(augment(images)[0]), seconds)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--seconds", type=float, default=3.0, help="measuring time per cell")
    p.add_argument("--workers", type=int, default=2, help="DataLoader workers of the per-image pipeline")
    p.add_argument("--threads", type=int, default=1, help="torch threads of the batched pipeline")
    args = p.parse_args()
    torch.set_num_threads(args.threads)

    rates = {case: [per_image(*case, args.workers, args.seconds), batched(*case, args.seconds)] for case in CASES}
    libc = ctypes.CDLL("libc.so.6")
    libc.mallopt(M_MMAP_THRESHOLD, 1 << 30)
    libc.mallopt(M_TRIM_THRESHOLD, 1 << 30)
    for case in CASES:
        rates[case].append(batched(*case, args.seconds))

    print(f"| input -> output (batch) | per-image v2, {args.workers} workers | batched, {args.threads} threads "
          "| speed-up | batched, heap kept | speed-up |")
    print("|---|---|---|---|---|---|")
    for (side, size, batch), (ref, plain, kept) in rates.items():
        print(f"| {side} -> {size} px ({batch}) | {ref:.0f} img/s | {plain:.0f} img/s | {plain / ref:.1f}x "
              f"| {kept:.0f} img/s | {kept / ref:.1f}x |")


if __name__ == "__main__":
    main()
