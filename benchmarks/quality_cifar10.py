"""ReSSL against SimCLR and MoCo v2 on one protocol (issue: make ReSSL learn on small students).

Protocol: mobilenetv3_small_100 (stem stride 1), 32 px, projector 1024-2048-128, SGD momentum 0.9, lr 0.06 at
batch 256, weight decay 5e-4, 1 epoch linear warm-up then cosine, `--steps` steps (780 = 4 epochs) over the
50,000 shared CIFAR-10 training images, 2 CPU threads; weighted kNN (k=200, T=0.1, cosine) on the backbone's
L2-normalised features in eval mode, 50k train images as the bank, the 10k test images as queries.

ReSSL runs through the real `edgessl pretrain` code path with a recipe's method settings (`ressl`: the default
small-student recipe; `ressl_official`: the paper's settings; `ressl_bn`: the paper's settings with BN in the
projector, the baseline of the README's ablation rows); `--set` adds recipe overrides after the protocol's (method
keys act on ReSSL; data, model and optim keys on every row).
SimCLR and MoCo v2 use `lightly` (pip install -e ".[bench]") with the same backbone, data, strong augmentation,
optimizer and schedule; each draws two strong views per image.

    python benchmarks/quality_cifar10.py                                   # all methods, 780 steps
    python benchmarks/quality_cifar10.py --methods ressl --steps 3120      # the 4x budget
    python benchmarks/quality_cifar10.py --methods ressl_bn --set ressl.infonce_weight=1   # an ablation row
    python benchmarks/quality_cifar10.py --dataset tinyimagenet --methods none,ressl --steps 234   # 64 px check

Prints one Markdown table: method, settings, steps, kNN top-1, training wall time (start-up and kNN not
counted), img/s.
"""

from __future__ import annotations

import argparse
import copy
import math
import os
import time
from pathlib import Path

import torch
from torch import nn
from torch.utils.data import DataLoader
from tqdm import tqdm

# the sibling script (benchmarks/ is on sys.path when run)
from pretrain_cifar10 import CIFAR, ROOT, knn_of, parse_cifar_args, training_speed
from edgessl.config import Config, load_config
from edgessl.data import build_dataset
from edgessl.data.batched_augment import BatchedTwoViews, ToUint8Tensor
from edgessl.engine import runtime as R
from edgessl.engine.optim import build_optimizer, lr_at, scaled_lr, set_lr
from edgessl.engine.trainer import pretrain
from edgessl.models import build_backbone
from edgessl.models.registry import feature_dim

# ReSSL rows: a recipe and the overrides that make the row (ressl_bn: the projector-BN baseline the README's ablation
# rows change, the small-student default before the InfoNCE and view-pair findings)
RECIPES = {"ressl": (ROOT / "recipes" / "cifar10_mobilenetv3_small.yaml", []),
           "ressl_official": (ROOT / "recipes" / "ressl_official.yaml", []),
           "ressl_bn": (ROOT / "recipes" / "ressl_official.yaml",
                        ["model.projector_bn=true", "model.projector_out_bn=true"])}
# --dataset: the shared file, its side in pixels and its training-set size (the 780-step headline is CIFAR-10's)
DATASETS = {"cifar10": (CIFAR, 32, 50_000),
            "tinyimagenet": (CIFAR.with_name("tinyimagenet200_jpegbytes_train100pc_val50pc.npz"), 64, 20_000)}
SIMCLR_T, MOCO_T, MOCO_BANK, MOCO_M = 0.5, 0.2, 4096, 0.99


def protocol(steps: int, threads: int, out: Path, dataset: str = "cifar10") -> list[str]:
    """Overrides that pin everything but the method: model, data, optimizer, schedule, budget, evaluation."""
    path, size, n_train = DATASETS[dataset]
    if not path.exists():
        raise SystemExit(f"--dataset {dataset} needs {path} (../shared/datasets)")
    return ["data.format=npz", f"data.root={path}", f"data.image_size={size}", f"data.num_workers={min(threads, 2)}",
            "data.train_samples=0", "data.batched_augment=true",
            "model.arch=mobilenetv3_small_100", "model.stem_stride=1", "model.projector_hidden=2048",
            "model.projector_dim=128", "optim.lr=0.06", "optim.base_batch=256", "optim.momentum=0.9",
            "optim.weight_decay=5e-4", "optim.warmup_epochs=1", "train.batch_size=256",
            f"train.epochs={math.ceil(steps / (n_train // 256))}", f"train.max_steps={steps}",
            "train.knn_every=0", "train.device=cpu", f"train.threads={threads}", "train.log_every=20",
            "knn.k=200", "knn.temperature=0.1", f"output_dir={out}"]


class Lightly(nn.Module):
    """A backbone + lightly projection head, and for MoCo its momentum copy and memory-bank loss."""

    def __init__(self, method: str, cfg: Config) -> None:
        from lightly.loss import NTXentLoss
        from lightly.models.modules import MoCoProjectionHead, SimCLRProjectionHead
        from lightly.models.utils import deactivate_requires_grad

        super().__init__()
        backbone = build_backbone(cfg.model.arch, cfg.model.stem_stride)
        dims = (feature_dim(backbone), cfg.model.projector_hidden, cfg.model.projector_dim)
        self.method = method
        if method == "simclr":
            self.online = nn.Sequential(backbone, SimCLRProjectionHead(*dims, batch_norm=False))
            self.criterion = NTXentLoss(temperature=SIMCLR_T)
        else:
            self.online = nn.Sequential(backbone, MoCoProjectionHead(*dims))
            self.key = copy.deepcopy(self.online)
            deactivate_requires_grad(self.key)
            self.criterion = NTXentLoss(temperature=MOCO_T, memory_bank_size=(MOCO_BANK, dims[-1]))

    @property
    def settings(self) -> str:
        if self.method == "simclr":
            return f"lightly NTXentLoss t={SIMCLR_T}, two strong views, in-batch negatives"
        return f"lightly, bank {MOCO_BANK}, t={MOCO_T}, m={MOCO_M}, two strong views"

    def loss(self, a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
        if self.method == "simclr":
            return self.criterion(self.online(a), self.online(b))
        from lightly.models.utils import update_momentum

        update_momentum(self.online, self.key, MOCO_M)
        with torch.no_grad():
            keys = self.key(b)
        return self.criterion(self.online(a), keys)


def train_lightly(method: str, cfg: Config, steps: int) -> tuple[Lightly, float, float]:
    """Train SimCLR or MoCo v2 on the protocol; returns (model, training wall seconds, img/s)."""
    torch.manual_seed(cfg.train.seed)
    model = Lightly(method, cfg)
    layout = R.memory_format(cfg)  # as `edgessl pretrain`
    model = model.to(memory_format=layout)
    batch = cfg.train.batch_size
    optimizer = build_optimizer(model.online, cfg.optim)
    augment = BatchedTwoViews(cfg.data.image_size, "cpu", seed=cfg.train.seed)
    loader = DataLoader(build_dataset(cfg.data, "train", ToUint8Tensor()), batch_size=batch, shuffle=True,
                        drop_last=True, num_workers=cfg.data.num_workers, persistent_workers=True, prefetch_factor=4)
    peak, warmup = scaled_lr(cfg.optim, batch), round(cfg.optim.warmup_epochs * len(loader))
    step, start = 0, time.time()
    with tqdm(total=steps, desc=method) as bar:
        while step < steps:
            for images, _ in loader:
                set_lr(optimizer, lr_at(step, steps, warmup, peak))
                a, b = (augment(images)[0].contiguous(memory_format=layout) for _ in range(2))  # two strong views
                loss = model.loss(a, b)
                optimizer.zero_grad(set_to_none=True)
                loss.backward()
                optimizer.step()
                step += 1
                bar.update()
                bar.set_postfix(loss=f"{loss.item():.3f}")
                if step == steps:
                    break
    wall = time.time() - start
    return model, wall, steps * batch / wall


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--methods", default="none,simclr,moco,ressl_official,ressl",
                   help="comma list of: none (untrained), simclr, moco, ressl (the default small-student recipe), "
                        "ressl_official (the paper's settings), ressl_bn (the projector-BN baseline)")
    p.add_argument("--steps", type=int, default=780,
                   help="optimizer steps at batch 256 (an epoch is 195 on cifar10, 78 on tinyimagenet)")
    p.add_argument("--dataset", choices=sorted(DATASETS), default="cifar10",
                   help="cifar10 (32 px, the issue's protocol) or tinyimagenet (64 px, 200 classes, 20k train images)")
    p.add_argument("--label", default="", help="settings text for the ReSSL rows (default: recipe + --set)")
    args = parse_cifar_args(p, set_help="recipe overrides after the protocol's (ablations); data/model/optim keys apply to every row",
                            check_cifar=False)  # protocol() checks the --dataset file
    rows = []
    for method in args.methods.split(","):
        out = Path(args.out) / f"quality-{args.dataset}-{method}-{args.steps}-{os.getpid()}"
        recipe, row = RECIPES.get(method, RECIPES["ressl"])
        cfg = load_config(recipe, [*protocol(args.steps, args.threads, out, args.dataset), *row, *args.set])
        if method == "none":
            torch.manual_seed(cfg.train.seed)
            rows.append(("no training", "", 0, knn_of(build_backbone(cfg.model.arch, cfg.model.stem_stride), cfg),
                         0.0, 0.0))
        elif method in ("simclr", "moco"):
            model, wall, speed = train_lightly(method, cfg, args.steps)
            rows.append(({"simclr": "SimCLR", "moco": "MoCo v2"}[method], model.settings, args.steps,
                         knn_of(model.online[0].eval(), cfg), wall, speed))
        elif method in RECIPES:
            result = pretrain(cfg)
            speed, wall = training_speed(out)
            settings = args.label or " ".join([Path(recipe).stem, *row, *args.set])
            rows.append((f"ReSSL ({method})", settings, result.steps, result.knn[max(result.knn)], wall, speed))
        else:
            raise SystemExit(f"--methods: unknown method '{method}'; use none, simclr, moco, "
                             f"{', '.join(RECIPES)}")
        print(f"{method}: kNN top-1 {rows[-1][3]:.2f}", flush=True)
    print("\n| method | settings | steps | kNN top-1 | wall | img/s |\n|---|---|---|---|---|---|")
    for name, settings, steps, top1, wall, speed in rows:
        print(f"| {name} | {settings} | {steps} | {top1:.2f} | {wall / 60:.1f} min | {speed:.0f} |")


if __name__ == "__main__":
    main()
