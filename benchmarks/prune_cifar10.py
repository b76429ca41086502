"""Prune a CIFAR-10 encoder to 50 % of its MACs, recover it for a budget, and report kNN top-1 before pruning, right
after and after recovery, with the fp32 ONNX Runtime latency (batch 1, 1 thread, median, best of 3 interleaved
rounds) of the pruned and the unpruned encoder (issue: structured pruning). Runs the real `edgessl prune` code
path on the shared CIFAR-10.

    python benchmarks/prune_cifar10.py runs/bench/<run>/last.pt --recover-epochs 5
    python benchmarks/prune_cifar10.py runs/bench/<run>/last.pt --recover-epochs 5 --importance taylor

Prints a Markdown table (append it to README's pruning table); the run folder also gets prune.json.
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

from edgessl.benchmarking import CIFAR, parse_cifar_args
from edgessl.export import get_target
from edgessl.export.check import paired_latency_ms
from edgessl.models.encoder_loading import load_encoder
from edgessl.pruning.pipeline import prune_checkpoint


def onnx_latency_ms(models: list[torch.nn.Module], arch: str, size: int, runs: int, rounds: int = 3) -> list[float]:
    """Batch-1 latency of each model exported to fp32 ONNX, in ONNX Runtime with 1 thread: the median of `runs`
    calls, measured in `rounds` interleaved rounds, the fastest round kept (the machine is shared)."""
    onnx = get_target("onnx")
    image = np.random.default_rng(0).standard_normal((1, 3, size, size)).astype(np.float32)
    with tempfile.TemporaryDirectory(prefix="edgessl-bench-") as tmp:
        runners = []
        for i, model in enumerate(models):
            path = Path(tmp) / f"encoder{i}.onnx"
            onnx.export(model, image, path, onnx.profile(arch), meta={})
            runners.append(onnx.load(path, threads=1))
        return paired_latency_ms(runners, image, warmup=max(runs // 10, 5), runs=runs, rounds=rounds)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("checkpoint", help="an edgessl CIFAR-10 checkpoint, e.g. runs/bench/<run>/last.pt")
    p.add_argument("--macs", type=float, default=0.5, help="MACs ratio to keep")
    p.add_argument("--importance", default="magnitude", choices=("magnitude", "taylor", "bn"))
    p.add_argument("--round-to", type=int, default=4, help="channel multiple (1 = any count)")
    p.add_argument("--recover-epochs", type=int, default=5, help="recovery budget in epochs over the training set")
    p.add_argument("--warmup", type=float, default=0.5, help="warm-up epochs of the recovery")
    p.add_argument("--latency-runs", type=int, default=300)
    args = parse_cifar_args(p, threads_help="torch threads for pruning and recovery")
    source = Path(args.checkpoint)
    out = Path(args.out) / f"{source.parent.name}-pruned{round(args.macs * 100)}-{int(time.time())}"
    overrides = ["data.format=npz", f"data.root={CIFAR}", f"data.num_workers={min(args.threads, 2)}",
                 "train.device=cpu", f"train.threads={args.threads}", f"optim.warmup_epochs={args.warmup}",
                 "train.knn_every=0", "train.log_every=20", *args.set]
    start = time.time()
    result = prune_checkpoint(source, macs=args.macs, importance=args.importance, recover_epochs=args.recover_epochs,
                              overrides=overrides, out=out, round_to=args.round_to)
    wall = time.time() - start
    unpruned, info = load_encoder(source)
    pruned, _ = load_encoder(result.checkpoint)
    latency = onnx_latency_ms([unpruned, pruned], info["arch"], info["image_size"], args.latency_runs)
    print(f"\n{info['arch']}, {args.importance} importance, channels multiple of {args.round_to}, "
          f"{args.recover_epochs} recovery epochs, {wall / 60:.1f} min on {args.threads} threads\n")
    print("| encoder | MACs (M) | params (M) | kNN top-1 | ONNX fp32 latency (ms, batch 1, 1 thread) |")
    print("|---|---|---|---|---|")
    for stage in result.stages:
        ms = latency[0] if stage.name == "unpruned" else latency[1]
        knn = "-" if stage.knn_top1 is None else f"{stage.knn_top1:.2f}"
        print(f"| {stage.name} | {stage.macs / 1e6:.2f} | {stage.params / 1e6:.3f} | {knn} | {ms:.3f} |")
    print(f"\nspeed-up {latency[0] / latency[1]:.2f}x; report {out / 'prune.json'}; encoder {result.checkpoint}")


if __name__ == "__main__":
    main()
