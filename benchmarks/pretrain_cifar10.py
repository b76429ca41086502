"""Pretrain a student on the shared CIFAR-10 for a fixed budget on this CPU; report kNN top-1 before and after,
training img/s and wall time (issue: core pretraining benchmark). Runs the real `edgessl pretrain` code path.

    python benchmarks/pretrain_cifar10.py --epochs 2                       # the paper's CIFAR settings
    python benchmarks/pretrain_cifar10.py --epochs 2 --set model.predictor=true --set model.projector_bn=true

Prints one Markdown row per run (append the rows to README's results table).
"""

from __future__ import annotations

import argparse
import csv
import os
import statistics
import time
from pathlib import Path

import torch
from torch.utils.data import DataLoader

from edgessl.config import load_config
from edgessl.data import build_dataset, eval_transform
from edgessl.engine.trainer import pretrain
from edgessl.evaluation.features import extract_features
from edgessl.evaluation.knn import knn_classify
from edgessl.models import build_backbone

ROOT = Path(__file__).resolve().parents[1]
CIFAR = ROOT.parent / "shared" / "datasets" / "cifar10_full_jpegbytes.npz"


def knn_of(backbone: torch.nn.Module, cfg) -> float:
    t = eval_transform(cfg.data.image_size)
    feats = [extract_features(backbone, DataLoader(build_dataset(cfg.data, s, t), batch_size=512,
                                                   num_workers=cfg.data.num_workers), "cpu", progress=False)
             for s in ("train", "test")]
    return knn_classify(*feats[0], *feats[1], k=cfg.knn.k, temperature=cfg.knn.temperature)["top1"]


def training_speed(run_dir: Path) -> tuple[float, float]:
    """(median img/s, training wall seconds) from a run's metrics.csv; the wall stops at the last step's log,
    so start-up and the final kNN are not counted."""
    with (run_dir / "metrics.csv").open() as fh:
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
    print(f"checkpoint: {out / 'last.pt'}")


if __name__ == "__main__":
    main()
