"""Weighted kNN classification on frozen features (spec section 6; the InstDisc / solo-learn formulation).

Each test feature votes with its k most cosine-similar train features; a neighbour of class c adds
exp(sim / T) to class c's score. Queries are processed in chunks so memory stays at chunk x N_train.
Under torch.distributed the bank can be sharded: each rank ranks its own part and the k best candidates of all
ranks are merged per chunk, so no rank ever holds the whole bank (the pretraining monitor on a GPU server).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from edgessl import distributed as D
from edgessl.errors import EdgeSSLError
from edgessl.measure.features import extract_features, resolve_num_classes


def nearest(queries: torch.Tensor, bank: torch.Tensor, bank_labels: torch.Tensor, k: int
            ) -> tuple[torch.Tensor, torch.Tensor]:
    """The `k` largest similarities of each query row to the bank rows and those rows' labels, (Q, k) each,
    sorted; a bank smaller than `k` is padded with similarity -inf (weight 0) and label 0."""
    sims, idx = (queries @ bank.T).topk(min(k, len(bank)), dim=1)
    labels = bank_labels[idx]
    if sims.shape[1] < k:
        pad = k - sims.shape[1]
        sims = F.pad(sims, (0, pad), value=float("-inf"))
        labels = F.pad(labels, (0, pad), value=0)
    return sims, labels


def merge_ranks(sims: torch.Tensor, labels: torch.Tensor, k: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Every rank's (Q, k) candidates for the same queries -> the k best of all of them, identical on each rank."""
    world, q = D.world_size(), len(sims)
    sims_all = D.all_gather_nograd(sims).view(world, q, k).transpose(0, 1).reshape(q, world * k)
    labels_all = D.all_gather_nograd(labels).view(world, q, k).transpose(0, 1).reshape(q, world * k)
    sims, pos = sims_all.topk(k, dim=1)
    return sims, labels_all.gather(1, pos)


@torch.no_grad()
def knn_classify(train_feats: torch.Tensor, train_labels: torch.Tensor, test_feats: torch.Tensor,
                 test_labels: torch.Tensor, k: int = 200, temperature: float = 0.1, num_classes: int | None = None,
                 chunk: int = 256, sharded: bool = False) -> dict[str, float | int]:
    """Top-1/top-5 accuracy (percent) of weighted kNN; `k` is clipped to the bank size.

    Features are L2-normalized here (a no-op for already normalized ones), so sim is the cosine.
    Runs on the device of `train_feats`. `sharded=True` (under torch.distributed): `train_*` is this rank's part
    of the bank, the test set is the same on every rank, and every rank returns the result for the whole bank.
    """
    if temperature <= 0:
        raise EdgeSSLError(f"kNN temperature must be > 0; got {temperature}")
    device = train_feats.device
    bank = F.normalize(train_feats.float(), dim=1)
    bank_labels = train_labels.to(device, torch.int64)
    test_labels = test_labels.to(device, torch.int64)
    every_label = D.all_gather_uneven(bank_labels) if sharded else bank_labels
    if len(every_label) == 0 or len(test_feats) == 0:
        raise EdgeSSLError("kNN needs at least one train and one test feature; the data split is empty")
    num_classes = resolve_num_classes(every_label, test_labels, num_classes)
    k = max(1, min(k, len(every_label)))
    top = min(5, num_classes)
    correct1 = correct5 = torch.zeros((), dtype=torch.int64, device=device)  # summed on the device: no sync a chunk
    for start in range(0, len(test_feats), chunk):
        queries = F.normalize(test_feats[start:start + chunk].to(device).float(), dim=1)
        targets = test_labels[start:start + chunk]
        sims, labels = nearest(queries, bank, bank_labels, k)  # sorted, so sims[:, :1] is each row's maximum
        if sharded:
            sims, labels = merge_ranks(sims, labels, k)
        # exp((s - s_max) / T) rescales a row's weights by one constant: same ranking, never overflows
        weights = ((sims - sims[:, :1]) / temperature).exp()
        scores = torch.zeros(len(queries), num_classes, device=device).scatter_add_(1, labels, weights)
        pred = scores.topk(top, dim=1).indices
        hits = pred == targets[:, None]
        correct1 = correct1 + hits[:, 0].sum()
        correct5 = correct5 + hits.any(dim=1).sum()
    n = len(test_feats)
    return {"top1": 100.0 * int(correct1) / n, "top5": 100.0 * int(correct5) / n, "k": k, "temperature": float(temperature),
            "num_train": len(every_label), "num_test": n}



@dataclass
class KnnResult:
    """`knn_classify`'s scores and the raw (un-normalized) features they came from, for callers that reuse them (the
    linear probe, the export check's cosine)."""

    scores: dict[str, float | int]
    train: tuple[torch.Tensor, torch.Tensor]  # (features, labels) of the bank
    test: tuple[torch.Tensor, torch.Tensor]

    @property
    def top1(self) -> float:
        return float(self.scores["top1"])


def knn_top1(model: nn.Module | Callable[[torch.Tensor], torch.Tensor], loaders: Sequence[Iterable],
             k: int = 200, temperature: float = 0.1, device: str | torch.device = "cpu", amp: str = "none",
             progress: bool = False, num_classes: int | None = None, sharded: bool = False,
             on_device: bool = False) -> KnnResult:
    """Weighted kNN top-1 (and top-5) of `model` with the (train, test) `loaders` as bank and queries: the one
    "loaders -> features -> kNN" path of the kNN monitor, `edgessl eval`, `prune`, the export check and benchmarks.

    `sharded`: each rank's loaders hold its shard of each split (`eval_loader(shard=True)`); the test features are
    gathered and each rank ranks its bank shard (`knn_classify(sharded=True)`), the same result on every rank.
    `on_device`: keep the features on `device` (the monitor ranks them there)."""
    train, test = (extract_features(model, loader, device, amp, progress, normalize=False,
                                    on_device=on_device or sharded) for loader in loaders)
    if sharded:
        test = (D.all_gather_uneven(test[0]), D.all_gather_uneven(test[1]))
    scores = knn_classify(*train, *test, k=k, temperature=temperature, num_classes=num_classes, sharded=sharded)
    return KnnResult(scores, train, test)
