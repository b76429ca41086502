"""What `edgessl eval` and `edgessl report` share: find a run's checkpoint, load its encoder and recipe, and
build un-augmented loaders over the recipe's data (the same eval transform the kNN monitor uses)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from torch import nn
from torch.utils.data import DataLoader, Subset

from edgessl.config import Config, config_from_dict
from edgessl.errors import EdgeSSLError

CHECKPOINT_NAME = "last.pt"  # what `edgessl pretrain` writes into a run folder


def checkpoint_path(path: str | Path) -> Path:
    """A checkpoint file itself, or a run folder's `last.pt`; a one-line error for anything else."""
    path = Path(path)
    if path.is_dir():
        ckpt = path / CHECKPOINT_NAME
        if not ckpt.is_file():
            raise EdgeSSLError(f"run folder '{path}' has no {CHECKPOINT_NAME}; train it with `edgessl pretrain` "
                               "or pass a checkpoint .pt file")
        return ckpt
    if path.is_file() and path.suffix == ".pt":
        return path
    if not path.exists():
        raise EdgeSSLError(f"'{path}' not found; pass a run folder (runs/<name>) or a checkpoint .pt file")
    raise EdgeSSLError(f"'{path}' is neither a run folder nor a checkpoint .pt file")


@dataclass
class LoadedEncoder:
    """A trained backbone (eval mode, CPU), its checkpoint `encoder` info, the recipe and the checkpoint's epoch."""

    model: nn.Module
    info: dict[str, Any]
    cfg: Config
    epoch: int
    path: Path


def load_trained_encoder(path: str | Path, overrides: Sequence[str] = (), branch: str = "student") -> LoadedEncoder:
    """Load a checkpoint's backbone and its stored recipe with `key=value` overrides applied (e.g. data.root=...)."""
    from edgessl.engine.checkpoint import load_edgessl_checkpoint, load_encoder

    path = checkpoint_path(path)
    ckpt = load_edgessl_checkpoint(path)
    if not isinstance(ckpt.get("config"), dict):
        raise EdgeSSLError(f"'{path}' stores no recipe ('config'); it was not written by `edgessl pretrain`")
    cfg = config_from_dict(ckpt["config"], list(overrides), source=f"{path} config")
    epoch = int(ckpt.get("epoch", 0))
    del ckpt  # load_encoder reads the file again; do not hold two copies of the weights
    model, info = load_encoder(path, branch)
    return LoadedEncoder(model, info, cfg, epoch, path)


def eval_loader(cfg: Config, split: str, max_samples: int = 0) -> DataLoader:
    """Un-augmented, unshuffled batches of the labelled images of one split at the recipe's image size;
    `max_samples` > 0 keeps a fixed class-balanced subset of that many (e.g. for a t-SNE plot)."""
    from edgessl.data import balanced_subset, build_dataset, eval_transform

    dataset = build_dataset(cfg.data, split, eval_transform(cfg.data.image_size), labelled=True)
    if 0 < max_samples < len(dataset):
        dataset = Subset(dataset, balanced_subset(dataset.targets, max_samples).tolist())
    return DataLoader(dataset, batch_size=cfg.knn.batch_size, num_workers=cfg.data.num_workers, shuffle=False)
