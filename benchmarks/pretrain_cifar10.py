"""Pretrain a student on the shared CIFAR-10 for a fixed budget on this CPU; report kNN top-1 before and after,
training img/s and wall time (issue: core pretraining benchmark). Runs the real `edgessl pretrain` code path.

    python benchmarks/pretrain_cifar10.py --epochs 2                       # the paper's CIFAR settings
    python benchmarks/pretrain_cifar10.py --epochs 2 --set model.predictor=true --set model.projector_bn=true

Prints one Markdown row per run (append the rows to README's results table).
"""

from __future__ import annotations

import argparse
import os
import time
from pathlib import Path

import torch

from edgessl.benchmarking import CIFAR, ROOT, knn_of, parse_cifar_args, training_speed
from edgessl.checkpoint import RunFolder
from edgessl.config import load_config
from edgessl.engine.trainer import pretrain
from edgessl.models import build_backbone

def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--recipe", default=str(ROOT / "recipes" / "ressl_official.yaml"))
    p.add_argument("--epochs", type=int, default=2, help="budget in epochs over the 50k training images")
    p.add_argument("--warmup", type=float, default=0.5, help="warm-up epochs (scaled down with the budget)")
    p.add_argument("--label", default="")
    args = parse_cifar_args(p)
    name = args.label or ("official" if not args.set else ",".join(args.set))
    slug = "".join(c if c.isalnum() else "_" for c in name)[:40]
    out = Path(args.out) / f"{Path(args.recipe).stem}-{slug}-{os.getpid()}"
    cfg = load_config(args.recipe, [f"data.format=npz", f"data.root={CIFAR}", f"data.num_workers={min(args.threads, 2)}",
                                    f"train.epochs={args.epochs}", f"optim.warmup_epochs={args.warmup}",
                                    "train.knn_every=0", "train.device=cpu", f"output_dir={out}",
                                    f"train.threads={args.threads}", "train.log_every=20", *args.set])
    torch.manual_seed(cfg.train.seed)
    before = knn_of(build_backbone(cfg.model.arch, cfg.model.stem_stride), cfg)
    start = time.time()
    result = pretrain(cfg)
    wall = time.time() - start
    after = result.knn[max(result.knn)]
    print(f"| {cfg.model.arch} | {name} | {result.steps} | {before:.2f} | {after:.2f} | "
          f"{training_speed(out)[0]:.0f} | {wall / 60:.1f} min |")
    print(f"checkpoint: {RunFolder(out).last}")


if __name__ == "__main__":
    main()
