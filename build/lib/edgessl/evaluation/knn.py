"""Weighted kNN classification on frozen features (spec section 6; the InstDisc / solo-learn formulation).

Each test feature votes with its k most cosine-similar train features; a neighbour of class c adds
exp(sim / T) to class c's score. Queries are processed in chunks so memory stays at chunk x N_train.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from edgessl.errors import EdgeSSLError
from edgessl.evaluation.features import resolve_num_classes


@torch.no_grad()
def knn_classify(train_feats: torch.Tensor, train_labels: torch.Tensor, test_feats: torch.Tensor,
                 test_labels: torch.Tensor, k: int = 200, temperature: float = 0.1, num_classes: int | None = None,
                 chunk: int = 256) -> dict[str, float | int]:
    """Top-1/top-5 accuracy (percent) of weighted kNN; `k` is clipped to the bank size.

    Features are L2-normalized here (a no-op for already normalized ones), so sim is the cosine.
    Runs on the device of `train_feats`.
    """
    if len(train_feats) == 0 or len(test_feats) == 0:
        raise EdgeSSLError("kNN needs at least one train and one test feature; the data split is empty")
    if temperature <= 0:
        raise EdgeSSLError(f"kNN temperature must be > 0; got {temperature}")
    device = train_feats.device
    bank = F.normalize(train_feats.float(), dim=1)
    bank_labels = train_labels.to(device, torch.int64)
    test_labels = test_labels.to(device, torch.int64)
    num_classes = resolve_num_classes(bank_labels, test_labels, num_classes)
    k = max(1, min(k, len(bank)))
    top = min(5, num_classes)
    correct1 = correct5 = 0
    for start in range(0, len(test_feats), chunk):
        queries = F.normalize(test_feats[start:start + chunk].to(device).float(), dim=1)
        targets = test_labels[start:start + chunk]
        sims, idx = (queries @ bank.T).topk(k, dim=1)  # sorted, so sims[:, :1] is each row's maximum
        # exp((s - s_max) / T) rescales a row's weights by one constant: same ranking, never overflows
        weights = ((sims - sims[:, :1]) / temperature).exp()
        scores = torch.zeros(len(queries), num_classes, device=device).scatter_add_(1, bank_labels[idx], weights)
        pred = scores.topk(top, dim=1).indices
        hits = pred == targets[:, None]
        correct1 += int(hits[:, 0].sum())
        correct5 += int(hits.any(dim=1).sum())
    n = len(test_feats)
    return {"top1": 100.0 * correct1 / n, "top5": 100.0 * correct5 / n, "k": k, "temperature": float(temperature),
            "num_train": len(bank), "num_test": n}
