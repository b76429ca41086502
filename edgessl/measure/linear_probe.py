"""Linear probe on cached frozen features (spec section 6).

The encoder runs once (`extract_features(..., normalize=False)`: raw pooled pre-logits); only a linear layer
is trained here, with mini-batches drawn from the cached tensors, so 100 epochs take seconds on a CPU.
Recipe: SGD with Nesterov momentum 0.9, lr 0.2 with a per-step cosine decay to 0, no weight decay.

Features are standardized with the train split's per-dimension mean and std by default. Pooled features of
different encoders (e.g. MobileNetV3 after its head conv vs a ResNet) differ in scale by orders of magnitude;
standardizing -- the same as the non-affine BatchNorm that MAE puts in front of its linear probe -- lets one
learning rate work for all of them. It is a fixed affine map, so the probe stays linear in the features.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn
from tqdm import trange

from edgessl.errors import EdgeSSLError
from edgessl.measure.features import resolve_num_classes


def _accuracy(logits: torch.Tensor, labels: torch.Tensor) -> tuple[float, float]:
    """Top-1 and top-5 accuracy in percent."""
    pred = logits.topk(min(5, logits.shape[1]), dim=1).indices
    hits = pred == labels[:, None]
    return 100.0 * hits[:, 0].float().mean().item(), 100.0 * hits.any(dim=1).float().mean().item()


def linear_probe(train_feats: torch.Tensor, train_labels: torch.Tensor, test_feats: torch.Tensor,
                 test_labels: torch.Tensor, epochs: int = 100, lr: float = 0.2, batch_size: int = 256,
                 momentum: float = 0.9, standardize: bool = True, num_classes: int | None = None, seed: int = 0,
                 progress: bool = False) -> dict:
    """Train a linear classifier on features; evaluate on the test features after every epoch.

    Returns {"best": {epoch, top1, top5}, "last": {epoch, top1, top5}, "epochs", "lr", "batch_size",
    "standardize"}; "best" is the epoch with the highest test top-1.
    """
    if len(train_feats) == 0 or len(test_feats) == 0:
        raise EdgeSSLError("the linear probe needs train and test features; the data split is empty")
    if epochs < 1 or lr <= 0 or batch_size < 1:
        raise EdgeSSLError(f"linear probe: epochs and batch size must be >= 1 and lr > 0; got "
                           f"epochs={epochs}, lr={lr}, batch_size={batch_size}")
    x_train, x_test = train_feats.float(), test_feats.float()
    y_train, y_test = train_labels.long(), test_labels.long()
    if standardize:
        mean, std = x_train.mean(0), x_train.std(0).clamp_min(1e-6)
        x_train, x_test = (x_train - mean) / std, (x_test - mean) / std
    num_classes = resolve_num_classes(y_train, y_test, num_classes)
    gen = torch.Generator().manual_seed(seed)
    head = nn.Linear(x_train.shape[1], num_classes)
    with torch.no_grad():  # seeded init, independent of the global RNG
        bound = 1 / math.sqrt(x_train.shape[1])
        head.weight.uniform_(-bound, bound, generator=gen)
        head.bias.zero_()
    opt = torch.optim.SGD(head.parameters(), lr=lr, momentum=momentum, nesterov=True, weight_decay=0.0)
    steps_per_epoch = math.ceil(len(x_train) / batch_size)
    total, step = epochs * steps_per_epoch, 0
    best = last = None
    for epoch in trange(1, epochs + 1, desc="linear probe", unit="epoch", disable=not progress, leave=False):
        order = torch.randperm(len(x_train), generator=gen)
        for start in range(0, len(x_train), batch_size):
            opt.param_groups[0]["lr"] = 0.5 * lr * (1 + math.cos(math.pi * step / total))
            idx = order[start:start + batch_size]
            loss = F.cross_entropy(head(x_train[idx]), y_train[idx])
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            step += 1
        with torch.no_grad():
            top1, top5 = _accuracy(head(x_test), y_test)
        last = {"epoch": epoch, "top1": top1, "top5": top5}
        if best is None or top1 > best["top1"]:
            best = last
    return {"best": best, "last": last, "epochs": epochs, "lr": lr, "batch_size": batch_size,
            "standardize": standardize}
