"""Every method on one protocol, each through the real `edgessl pretrain` engine (`method=...`): the default
small-student method (`infonce`), ReSSL's relation loss, and the peers SimCLR, MoCo v2 and BYOL.

Protocol: mobilenetv3_small_100 (stem stride 1), 32 px, projector 2048-128, SGD momentum 0.9, lr 0.06 at batch 256,
weight decay 5e-4, 1 epoch linear warm-up then cosine, `--steps` steps (780 = 4 epochs) over the 50,000 shared
CIFAR-10 training images, 2 CPU threads; weighted kNN (k=200, T=0.1, cosine) on the backbone's L2-normalised
features in eval mode, 50k train images as the bank, the 10k test images as queries.

Every row is a recipe plus `method=` (and the row's overrides): `infonce` is recipes/cifar10_mobilenetv3_small.yaml
as it is (InfoNCE on the weak-view teacher keys + NT-Xent among the student's strong views, three view pairs);
`infonce_2pairs` the same at two view pairs, `infonce_only` without the NT-Xent at two pairs (the default before
issue 26). `ressl`, `simclr`, `moco_v2` and `byol` are the same recipe with another method at two view pairs, so they
share its backbone, projector (BN included), optimizer and schedule -- the peers draw two strong views per pair (four
a step: SimCLR's step costs what the default's three strong and three weak views cost) and use lightly's losses
(pip install -e ".[peers]"), at their usual temperatures (method options). `ressl_official` is the paper's
settings (recipes/ressl_official.yaml); `ressl_bn` those with BN in the projector. The relation-share rows run
`ressl` on the default's ingredients (two view pairs, no NT-Xent) with InfoNCE at the default's temperature:
`ressl_warm25`/`ressl_warm50` InfoNCE for the first 25/50 % of the steps then the relation loss (`_pred`: with the
student's predictor), `ressl_mix25` a fixed 0.25 relation share, `ressl_grow` a share growing linearly from 0 to 1
over the run. `--set` adds recipe overrides after the protocol's and the row's (e.g.
simclr.temperature=0.2).

    python benchmarks/quality_cifar10.py                                           # all rows, 780 steps
    python benchmarks/quality_cifar10.py --methods infonce --steps 3120            # the 4x budget
    python benchmarks/quality_cifar10.py --methods ressl_bn --set ressl.infonce_weight=1   # an ablation row
    python benchmarks/quality_cifar10.py --methods infonce,ressl_warm25,ressl_grow --steps 3120   # relation share
    python benchmarks/quality_cifar10.py --dataset tinyimagenet --methods none,infonce --steps 234   # 64 px

Prints one Markdown table: method, settings, steps, kNN top-1, training wall time (start-up and kNN not
counted), img/s.
"""

from __future__ import annotations

import argparse
import math
import os
from pathlib import Path

import torch

from edgessl.benchmarking import CIFAR, ROOT, knn_of, parse_cifar_args, training_speed
from edgessl.config import load_config
from edgessl.engine.trainer import pretrain
from edgessl.methods import describe
from edgessl.models import build_backbone

DEFAULT = ROOT / "recipes" / "cifar10_mobilenetv3_small.yaml"
OFFICIAL = ROOT / "recipes" / "ressl_official.yaml"
PAIRS2 = ["data.view_pairs=2"]  # the peers' and ressl's measured protocol: two view pairs (SimCLR: 4 strong views)
DEFAULT_2PAIRS = [*PAIRS2, "infonce.queue_size=4096"]  # the default at two view pairs (its queue: 8 steps of keys)
ROWS = {  # row -> (recipe, overrides)
    "none": (DEFAULT, []),
    "infonce": (DEFAULT, []),
    "infonce_2pairs": (DEFAULT, DEFAULT_2PAIRS),
    "infonce_only": (DEFAULT, [*DEFAULT_2PAIRS, "infonce.ntxent_weight=0"]),
    "ressl": (DEFAULT, ["method=ressl", *PAIRS2, "ressl.tau_s=0.1", "ressl.pair_targets=all",
                        "ressl.batchnorm=plain"]),
    "simclr": (DEFAULT, ["method=simclr", *PAIRS2]),
    "moco_v2": (DEFAULT, ["method=moco_v2", *PAIRS2]),
    "byol": (DEFAULT, ["method=byol", *PAIRS2]),
    "ressl_official": (OFFICIAL, []),
    "ressl_bn": (OFFICIAL, ["model.projector_bn=true", "model.projector_out_bn=true"]),
}


def relation_rows(steps: int, steps_per_epoch: int) -> dict[str, tuple[Path, list[str]]]:
    """The relation-share study on the default's ingredients (the `ressl` row; InfoNCE at the default's
    temperature, 0.2): InfoNCE for the first quarter or half of the run, then the relation loss alone, each with
    and without the student's predictor; a fixed 0.25 relation share; a share growing linearly from 0 to 1."""
    base = [*ROWS["ressl"][1], "ressl.infonce_tau=0.2"]
    rows = {"ressl_mix25": [*base, "ressl.infonce_weight=0.75"],
            "ressl_grow": [*base, "ressl.infonce_weight_schedule=linear"]}
    for share in (25, 50):
        warm = [*base, f"ressl.infonce_warmup_epochs={steps * share / 100 / steps_per_epoch:g}"]
        rows[f"ressl_warm{share}"], rows[f"ressl_warm{share}_pred"] = warm, [*warm, "model.predictor=true"]
    return {name: (DEFAULT, row) for name, row in rows.items()}


# --dataset: the shared file, its side in pixels and its training-set size (the 780-step headline is CIFAR-10's)
DATASETS = {"cifar10": (CIFAR, 32, 50_000),
            "tinyimagenet": (CIFAR.with_name("tinyimagenet200_jpegbytes_train100pc_val50pc.npz"), 64, 20_000)}
BATCH = 256  # the protocol's batch, also optim.base_batch


def steps_per_epoch(dataset: str) -> int:
    return DATASETS[dataset][2] // BATCH


def protocol(steps: int, threads: int, out: Path, dataset: str = "cifar10") -> list[str]:
    """Overrides that pin everything but the method: model, data, optimizer, schedule, budget, evaluation."""
    path, size, _ = DATASETS[dataset]
    if not path.exists():
        raise SystemExit(f"--dataset {dataset} needs {path} (../shared/datasets)")
    return ["data.format=npz", f"data.root={path}", f"data.image_size={size}", f"data.num_workers={min(threads, 2)}",
            "data.train_samples=0", "data.batched_augment=true",
            "model.arch=mobilenetv3_small_100", "model.stem_stride=1", "model.projector_hidden=2048",
            "model.projector_dim=128", "optim.lr=0.06", f"optim.base_batch={BATCH}", "optim.momentum=0.9",
            "optim.weight_decay=5e-4", "optim.warmup_epochs=1", f"train.batch_size={BATCH}",
            f"train.epochs={math.ceil(steps / steps_per_epoch(dataset))}", f"train.max_steps={steps}",
            "train.knn_every=0", "train.device=cpu", f"train.threads={threads}",
            "train.log_every=20", "knn.k=200", "knn.temperature=0.1", f"output_dir={out}"]


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--methods", default="none,simclr,moco_v2,byol,ressl_official,ressl,infonce",
                   help=f"comma list of rows: {', '.join(ROWS)} (none: the untrained encoder), or the "
                        "relation-share rows ressl_warm25[_pred], ressl_warm50[_pred], ressl_mix25, ressl_grow")
    p.add_argument("--steps", type=int, default=780,
                   help="optimizer steps at batch 256 (an epoch is 195 on cifar10, 78 on tinyimagenet)")
    p.add_argument("--dataset", choices=sorted(DATASETS), default="cifar10",
                   help="cifar10 (32 px, the issue's protocol) or tinyimagenet (64 px, 200 classes, 20k train images)")
    p.add_argument("--label", default="", help="settings text for the rows (default: recipe + overrides)")
    args = parse_cifar_args(p, set_help="recipe overrides after the protocol's and the row's (ablations)",
                            check_cifar=False)  # protocol() checks the --dataset file
    rows = []
    known = {**ROWS, **relation_rows(args.steps, steps_per_epoch(args.dataset))}
    for name in args.methods.split(","):
        if name not in known:
            raise SystemExit(f"--methods: unknown row '{name}'; use {', '.join(known)}")
        recipe, row = known[name]
        out = Path(args.out) / f"quality-{args.dataset}-{name}-{args.steps}-{os.getpid()}"
        cfg = load_config(recipe, [*protocol(args.steps, args.threads, out, args.dataset), *row, *args.set])
        if name == "none":
            torch.manual_seed(cfg.train.seed)
            rows.append(("no training", "", 0, knn_of(build_backbone(cfg.model.arch, cfg.model.stem_stride), cfg),
                         0.0, 0.0))
        else:
            result = pretrain(cfg)
            speed, wall = training_speed(out)
            settings = args.label or " ".join([recipe.stem, *row, *args.set, f"({describe(cfg)})"])
            rows.append((name, settings, result.steps, result.knn[max(result.knn)], wall, speed))
        print(f"{name}: kNN top-1 {rows[-1][3]:.2f}", flush=True)
    print("\n| method | settings | steps | kNN top-1 | wall | img/s |\n|---|---|---|---|---|---|")
    for name, settings, steps, top1, wall, speed in rows:
        print(f"| {name} | {settings} | {steps} | {top1:.2f} | {wall / 60:.1f} min | {speed:.0f} |")


if __name__ == "__main__":
    main()
