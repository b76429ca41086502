"""Un-augmented, unshuffled loaders over a recipe's labelled train and test splits: what kNN, the linear probe, the
export check and the t-SNE plot all read (the same eval transform the kNN monitor uses)."""

from __future__ import annotations

from torch.utils.data import DataLoader, Subset

from edgessl import distributed as D
from edgessl.config import Config
from edgessl.data import balanced_subset, build_dataset, eval_transform


def eval_loader(cfg: Config, split: str, max_samples: int = 0, shard: bool = False,
                pin_memory: bool = False) -> DataLoader:
    """Batches of one split at the recipe's image size; `max_samples` > 0 keeps a fixed class-balanced subset of
    that many (e.g. for a t-SNE plot or the kNN monitor's bank). `shard`: only this rank's contiguous part
    (`distributed.shard`), so the ranks' parts gathered in rank order are the whole split. `pin_memory` for a CUDA
    consumer."""
    dataset = build_dataset(cfg.data, split, eval_transform(cfg.data.image_size), labelled=True)
    if 0 < max_samples < len(dataset):
        dataset = Subset(dataset, balanced_subset(dataset.targets, max_samples).tolist())
    if shard:
        dataset = Subset(dataset, list(D.shard(len(dataset))))
    return DataLoader(dataset, batch_size=cfg.knn.batch_size, num_workers=cfg.data.num_workers, shuffle=False,
                      pin_memory=pin_memory)


def eval_loaders(cfg: Config, pin_memory: bool = False) -> tuple[DataLoader, DataLoader]:
    """The (train, test) loaders: the kNN bank and its queries."""
    return eval_loader(cfg, "train", pin_memory=pin_memory), eval_loader(cfg, "test", pin_memory=pin_memory)
