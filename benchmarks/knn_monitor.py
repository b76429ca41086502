"""What one check of the pretraining kNN monitor costs at ImageNet scale (issue 25), estimated on this CPU.

The ranking step (queries @ bank.T, top-k, weighted vote: `evaluation.knn`) is timed on one chunk of random
1024-d features (mobilenetv3_small_100's) against each bank shard size below, and multiplied by the chunks:
  before: rank 0 alone ranks all 50,000 val queries against all 1,281,167 train features, on the CPU with one
          thread (what torchrun's OMP_NUM_THREADS=1 gave it), while the other ranks wait;
  after:  each of `--ranks` ranks ranks the 50,000 queries against its shard of the monitor's bank
          (`knn.bank_samples`, 100 a class = 100,000) and the candidates are merged (`knn.merge_ranks`, timed
          here without the all_gather); also the whole 1.28 M bank sharded, what an `edgessl eval` job does
          per rank. On a GPU server "after" runs on each rank's GPU; those times are not measured here.
"before" is timed against an eighth of the bank (160,146 rows) and scaled by 8: ranking is linear in the bank.
Feature extraction (a forward pass over the bank and val images) is not included: it is a per-image cost, and
"after" extracts 100,000 / ranks + 50,000 / ranks images a rank instead of 1,331,167 on rank 0.

    python benchmarks/knn_monitor.py                 # one thread, prints a Markdown table
"""

from __future__ import annotations

import argparse
import statistics
import time

import torch
import torch.nn.functional as F

from edgessl.measure.knn import nearest

TRAIN, VAL, CLASSES = 1_281_167, 50_000, 1000


def _chunk_seconds(bank_rows: int, dim: int, chunk: int, k: int, repeats: int) -> float:
    """Median seconds to rank one chunk of queries against `bank_rows` features and vote (as knn_classify)."""
    gen = torch.Generator().manual_seed(0)
    bank = F.normalize(torch.randn(bank_rows, dim, generator=gen), dim=1)
    labels = torch.randint(0, CLASSES, (bank_rows,), generator=gen)
    queries = F.normalize(torch.randn(chunk, dim, generator=gen), dim=1)
    times = []
    for _ in range(repeats + 1):  # the first run warms up
        start = time.perf_counter()
        sims, idx = nearest(queries, bank, labels, k)
        weights = ((sims - sims[:, :1]) / 0.1).exp()
        torch.zeros(chunk, CLASSES).scatter_add_(1, idx, weights).topk(5, dim=1)
        times.append(time.perf_counter() - start)
    return statistics.median(times[1:])


def _merge_seconds(ranks: int, chunk: int, k: int, repeats: int) -> float:
    """Median seconds to pick the k best of `ranks` x k gathered candidates for one chunk (`merge_ranks` minus
    the all_gather)."""
    sims = torch.randn(chunk, ranks * k)
    labels = torch.randint(0, CLASSES, (chunk, ranks * k))
    times = []
    for _ in range(repeats + 1):
        start = time.perf_counter()
        best, pos = sims.topk(k, dim=1)
        labels.gather(1, pos)
        times.append(time.perf_counter() - start)
    return statistics.median(times[1:])


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--dim", type=int, default=1024)
    p.add_argument("--chunk", type=int, default=256, help="queries per chunk (knn_classify's default)")
    p.add_argument("--k", type=int, default=200)
    p.add_argument("--ranks", type=int, default=8)
    p.add_argument("--bank-samples", type=int, default=100_000)
    p.add_argument("--repeats", type=int, default=5)
    p.add_argument("--threads", type=int, default=1)
    args = p.parse_args()
    torch.set_num_threads(args.threads)

    shard_full, shard_mon = -(-TRAIN // args.ranks), -(-args.bank_samples // args.ranks)
    t_full, t_mon = (_chunk_seconds(n, args.dim, args.chunk, args.k, args.repeats) for n in (shard_full, shard_mon))
    merge = _merge_seconds(args.ranks, args.chunk, args.k, args.repeats)
    chunks = -(-VAL // args.chunk)
    print(f"measured ({args.threads} thread(s), chunk {args.chunk} x {args.dim}-d, k {args.k}): "
          f"{t_mon * 1e3:.1f} ms a chunk against {shard_mon:,} bank rows, {t_full * 1e3:.1f} ms against "
          f"{shard_full:,}; merge of {args.ranks} x {args.k} candidates {merge * 1e3:.2f} ms a chunk; "
          f"{chunks} chunks for {VAL:,} queries\n")
    print("| kNN check (ranking only, CPU, 1 thread a rank) | bank rows a rank | s a check | bank features held |")
    print("|---|---|---|---|")
    rows = [("before: rank 0 alone, whole train set", TRAIN, chunks * t_full * TRAIN / shard_full, ""),
            (f"after: {args.ranks} ranks, monitor bank `knn.bank_samples={args.bank_samples}`", shard_mon,
             chunks * (t_mon + merge), " a rank"),
            (f"after: {args.ranks} ranks, whole train set (`edgessl eval`-sized bank)", shard_full,
             chunks * (t_full + merge), " a rank")]
    for name, rows_held, seconds, each in rows:
        print(f"| {name} | {rows_held:,} | {seconds:,.0f} | {rows_held * args.dim * 4 / 1e9:.2f} GB{each} |")


if __name__ == "__main__":
    main()
