"""What the `benchmarks/` scripts share (they import the package, not each other): where the shared datasets are,
the options every CIFAR-10 benchmark takes, kNN of a bare backbone and the training speed of a finished run."""

from __future__ import annotations

import argparse
import csv
import statistics
from pathlib import Path

import torch

from edgessl.checkpoint import RunFolder
from edgessl.config import Config
from edgessl.measure.knn import knn_top1
from edgessl.measure.loaders import eval_loaders

ROOT = Path(__file__).resolve().parents[1]  # the checkout (recipes/, benchmarks/)
DATASETS = ROOT.parent / "shared" / "datasets"
CIFAR = DATASETS / "cifar10_full_jpegbytes.npz"


def knn_of(backbone: torch.nn.Module, cfg: Config) -> float:
    """kNN top-1 of a backbone on the recipe's data (CPU), e.g. the untrained baseline row."""
    return knn_top1(backbone, eval_loaders(cfg), k=cfg.knn.k, temperature=cfg.knn.temperature).top1


def training_speed(run_dir: Path) -> tuple[float, float]:
    """(median img/s, training wall seconds) from a run's metrics.csv; the wall stops at the last step's log,
    so start-up and the final kNN are not counted."""
    with RunFolder(run_dir).metrics.open() as fh:
        steps = [r for r in csv.DictReader(fh) if r["img_per_s"]]
    return statistics.median(float(r["img_per_s"]) for r in steps), float(steps[-1]["wall_s"])


def parse_cifar_args(p: argparse.ArgumentParser, set_help: str = "recipe overrides",
                     threads_help: str | None = None, check_cifar: bool = True) -> argparse.Namespace:
    """Add the options every CIFAR-10 benchmark shares (--set, --threads, --out), parse, check that the shared
    CIFAR-10 file is there (unless `check_cifar` is False: a script that checks its own data file) and set the
    torch threads."""
    p.add_argument("--set", action="extend", nargs="+", default=[], metavar="key=value",
                   help=f"{set_help} (one or more; repeatable)")
    p.add_argument("--threads", type=int, default=2, help=threads_help)
    p.add_argument("--out", default=str(ROOT / "runs" / "bench"))
    args = p.parse_args()
    if check_cifar and not CIFAR.exists():
        raise SystemExit(f"needs {CIFAR} (../shared/datasets)")
    torch.set_num_threads(args.threads)
    return args
