"""Pretrain an encoder with a self-supervised method (`method=`: ressl, infonce, simclr, moco_v2, byol).

examples:
  edgessl pretrain recipes/quickstart.yaml
  edgessl pretrain recipes/quickstart.yaml train.epochs=2 --print-config   # check and show, do not train
  edgessl pretrain recipes/cifar10_mobilenetv3_small.yaml method=simclr simclr.temperature=0.5
  edgessl pretrain recipes/cifar10_mobilenetv3_small.yaml data.root=/data/cifar10 train.epochs=50
  edgessl pretrain runs/<name>/config.yaml            # resumes from runs/<name>/last.pt
  edgessl pretrain recipes/mobilenetv3_small.yaml --nproc 8     # re-launches itself through torchrun
  torchrun --nproc_per_node=8 -m edgessl pretrain recipes/mobilenetv3_small.yaml

Overrides are dotted `key=value` pairs (values parsed as YAML). The run folder is `output_dir`
(default runs/<name>-<timestamp>); it gets config.yaml, last.pt, metrics.csv and tensorboard/. A run holds its
folder (.edgessl.lock): a second run on it is refused, naming the holder's PID.
"""

from __future__ import annotations

import argparse
import os
import sys

HELP = "pretrain an encoder (ressl, infonce, simclr, moco_v2, byol) from a recipe (YAML) and key=value overrides"


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("recipe", help="recipe YAML, e.g. recipes/quickstart.yaml, or a run's config.yaml")
    p.add_argument("overrides", nargs="*", metavar="key=value", help="dotted overrides, e.g. train.epochs=50")
    p.add_argument("--resume", action="store_true",
                   help="require resuming from <output_dir>/last.pt (it is resumed automatically when present)")
    p.add_argument("--nproc", type=int, default=None, metavar="N",
                   help="run N >= 1 processes on this machine by re-launching through torchrun (default: 1, "
                        "no torchrun)")
    p.add_argument("--print-config", action="store_true",
                   help="resolve the recipe and overrides, check them, print the full config and the derived values "
                        "(global/local batch, steps per epoch, scaled lr, queue turnover, which loss trains when), "
                        "then exit without training")


def _relaunch_with_torchrun(args: argparse.Namespace) -> int:
    """`--nproc N`: exec `python -m torch.distributed.run --nproc_per_node N -m edgessl pretrain ...`."""
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", f"--nproc_per_node={args.nproc}",
           "-m", "edgessl", "pretrain", args.recipe, *args.overrides] + (["--resume"] if args.resume else [])
    os.execv(sys.executable, cmd)
    return 0  # not reached


def run(args: argparse.Namespace) -> int:
    from edgessl import distributed as D
    from edgessl.checkpoint import RunFolder
    from edgessl.config import load_config
    from edgessl.errors import EdgeSSLError

    if args.nproc is not None and args.nproc < 1:
        raise EdgeSSLError(f"--nproc must be >= 1 (processes to run); got {args.nproc}")
    if args.nproc and args.nproc > 1 and not D.launched_by_torchrun() and not args.print_config:
        return _relaunch_with_torchrun(args)
    cfg = load_config(args.recipe, args.overrides)
    if args.print_config:  # checked and shown for --nproc (or torchrun's) processes, not trained
        from edgessl.engine.plan import print_config

        print(print_config(cfg, args.nproc or D.world_size()), end="")
        return 0
    from edgessl.engine.trainer import pretrain

    result = pretrain(cfg, resume=True if args.resume else None)
    if D.is_main() and result.knn:
        first, last = min(result.knn), max(result.knn)
        knn = f"{result.knn[last]:.2f}% (epoch {last})"
        if first != last:  # with train.knn_every=0 only the final kNN ran
            knn = f"{result.knn[first]:.2f}% (epoch {first}) -> {knn}"
        print(f"done: {result.steps} steps; kNN top-1 {knn}; checkpoint {RunFolder(result.run_dir).last}")
    return 130 if result.stopped_early else 0
