"""How a pretraining run's teacher keys sit: the norms behind key bunching (README, issue on small students).

Loads a run's `last.pt` (or a checkpoint file), draws weak views of `--images` training images (seeded), runs the
teacher in train mode (plain batch BN, as one training step sees it) and prints the norm spread of the pooled
backbone features, the projector's hidden layer and its last Linear's output, the mean cosine of the normalized keys (all, and among the
smallest-norm 80%), and the variance share of the top singular direction of the keys.

    python benchmarks/key_geometry.py runs/bench/quality-cifar10-ressl-3120-NNNN
"""

from __future__ import annotations

import argparse
from pathlib import Path

import torch
import torch.nn.functional as F

from edgessl.checkpoint import Checkpoint, checkpoint_path
from edgessl.config import config_from_dict
from edgessl.data import build_dataset
from edgessl.data.batched_augment import BatchedTwoViews, ToUint8Tensor
from edgessl.errors import EdgeSSLError
from edgessl.methods import Context, resolve
from edgessl.methods.losses import mean_cosine
from edgessl.models import build_backbone


def _spread(name: str, x: torch.Tensor) -> None:
    n = x.norm(dim=1)
    print(f"{name:28s} norm min {n.min():8.2f}  median {n.median():8.2f}  max {n.max():8.2f}  "
          f"max/median {n.max() / n.median():6.1f}x")


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("run", type=Path, help="a run folder (its last.pt) or a checkpoint .pt file")
    p.add_argument("--images", type=int, default=256, help="training images in the one batch (default 256)")
    p.add_argument("--seed", type=int, default=0)
    args = p.parse_args()
    try:
        ckpt = Checkpoint.load(checkpoint_path(args.run))
        cfg = config_from_dict(ckpt.config, [f"{ckpt.config.get('method', 'ressl')}.batchnorm=plain"],
                               source=f"{args.run} config")
        method, options = resolve(cfg)  # ressl and infonce: the methods with teacher keys and a queue
    except EdgeSSLError as exc:
        raise SystemExit(str(exc)) from None
    torch.set_num_threads(1)
    model = method(cfg, options, build_backbone(cfg.model.arch, cfg.model.stem_stride), Context(1, args.images, 1, 1))
    model.load_state_dict(ckpt.model)
    model.train()
    data = build_dataset(cfg.data, "train", ToUint8Tensor())
    idx = torch.randperm(len(data), generator=torch.Generator().manual_seed(args.seed))[:args.images]
    images = torch.stack([data[int(i)][0] for i in idx])
    _, weak = BatchedTwoViews(cfg.data.image_size, seed=args.seed)(images)
    with torch.no_grad():
        h = model.teacher.backbone(weak)
        _spread("pooled backbone features", h)
        for layer in model.teacher.projector:
            h = layer(h)
            if isinstance(layer, torch.nn.ReLU):
                _spread("projector hidden (after ReLU)", h)
            elif isinstance(layer, torch.nn.Linear):
                linear_out = h
        _spread("projector output (last Linear)", linear_out)
        keys = F.normalize(h, dim=1)
    small = h.norm(dim=1).argsort()[:int(0.8 * len(h))]
    s = torch.linalg.svdvals(h - h.mean(0))
    print(f"key mean cosine {mean_cosine(keys):.3f}  (smallest-norm 80%: {mean_cosine(keys[small]):.3f})  "
          f"top singular direction {float(s[0] ** 2 / (s ** 2).sum()):.1%} of the key variance")


if __name__ == "__main__":
    main()
