"""Evaluate a trained encoder: weighted kNN and a linear probe on frozen features (spec section 6).

examples:
  edgessl eval runs/mnv3s                          # both kNN and linear probe on the run's last.pt
  edgessl eval runs/mnv3s/last.pt --knn --k 20
  edgessl eval runs/mnv3s data.root=/data/cifar10 train.device=cpu --linear --epochs 50

Features of the train and test splits are extracted once (no augmentation, the recipe's image size), then kNN
and/or the linear probe run on them. Results are printed and written to eval.json beside the checkpoint.
Overrides are dotted `key=value` changes to the recipe stored in the checkpoint (data.*, train.device, ...);
write them right after the path, before any --option.
"""

from __future__ import annotations

import argparse
from collections.abc import Callable

HELP = "kNN and linear-probe accuracy of a trained encoder; writes eval.json beside the checkpoint"


def _positive(kind: type) -> Callable[[str], int | float]:
    """An argparse type: a number of `kind` that must be > 0 (checked before the slow feature extraction)."""
    def parse(text: str) -> int | float:
        try:
            value = kind(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"not a{'n integer' if kind is int else ' number'}: {text!r}") from None
        if value <= 0:
            raise argparse.ArgumentTypeError(f"must be > 0; got {text}")
        return value
    return parse


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("path", help="a run folder (uses its last.pt) or a checkpoint .pt file")
    p.add_argument("overrides", nargs="*", metavar="key=value", help="recipe overrides, e.g. data.root=/data/cifar10")
    p.add_argument("--knn", action="store_true", help="run weighted kNN (default: both kNN and linear probe)")
    p.add_argument("--linear", action="store_true", help="run the linear probe (default: both)")
    p.add_argument("--k", type=_positive(int), default=None, help="kNN neighbours (default: the recipe's knn.k, 200)")
    p.add_argument("--temperature", type=_positive(float), default=None,
                   help="kNN temperature (default: the recipe's knn.temperature, 0.1)")
    p.add_argument("--epochs", type=_positive(int), default=100, help="linear-probe epochs (default 100)")
    p.add_argument("--lr", type=_positive(float), default=0.2,
                   help="linear-probe learning rate, cosine-decayed (default 0.2)")
    p.add_argument("--branch", choices=("student", "teacher"), default="student",
                   help="which backbone of the checkpoint to evaluate (default student)")
    p.add_argument("--no-progress", action="store_true", help="hide progress bars")


def run(args: argparse.Namespace) -> int:
    from pathlib import Path

    from edgessl.checkpoint import RunFolder
    from edgessl.evaluation.evaluate import evaluate

    both = not (args.knn or args.linear)
    result = evaluate(args.path, knn=args.knn or both, linear=args.linear or both, k=args.k,
                      temperature=args.temperature, epochs=args.epochs, lr=args.lr, overrides=args.overrides,
                      branch=args.branch, progress=not args.no_progress)
    print(f"{result['arch']} epoch {result['epoch']} ({result['branch']}), "
          f"{result['data']['train']} train / {result['data']['test']} test images")
    if "knn" in result:
        r = result["knn"]
        print(f"kNN (k={r['k']}, T={r['temperature']:g}): top-1 {r['top1']:.2f}%  top-5 {r['top5']:.2f}%")
    if "linear" in result:
        best, last = result["linear"]["best"], result["linear"]["last"]
        print(f"linear probe: best top-1 {best['top1']:.2f}% (epoch {best['epoch']}), "
              f"last top-1 {last['top1']:.2f}%  top-5 {last['top5']:.2f}%")
    print(f"wrote {Path(result['checkpoint']).with_name(RunFolder.EVAL)}")
    return 0
