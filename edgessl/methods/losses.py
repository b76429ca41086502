"""The losses ReSSL uses (spec sections 1, 4, 5), as small pure functions of normalized embeddings.

They run in float32 even inside the training step's autocast: `.float()` alone is undone there (autocast casts a
matmul's inputs back to bf16/fp16), and softmaxes over a 65k-131k queue at tau 0.04 need the precision.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import TypeVar

import torch
import torch.nn.functional as F

_F = TypeVar("_F", bound=Callable)


def float32(fn: _F) -> _F:
    """Run `fn` with autocast off on the device of its first (tensor) argument."""
    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        with torch.autocast(args[0].device.type, enabled=False):
            return fn(*args, **kwargs)
    return wrapper  # type: ignore[return-value]


@float32
def relation_loss(z_s: torch.Tensor, z_t: torch.Tensor, queue: torch.Tensor, tau_s: float, tau_t: float
                  ) -> tuple[torch.Tensor, torch.Tensor]:
    """Cross-entropy between the teacher's and the student's similarity distributions over the queue.

    `z_s`, `z_t`: (B, D) L2-normalized; `queue`: (K, D) L2-normalized, *without* the current batch.
    Returns the mean loss and the teacher distribution `p_t` (B, K) (for monitoring its entropy).
    """
    with torch.no_grad():
        p_t = F.softmax(z_t.float() @ queue.float().T / tau_t, dim=1)
    log_p_s = F.log_softmax(z_s.float() @ queue.float().T / tau_s, dim=1)
    return -(p_t * log_p_s).sum(dim=1).mean(), p_t


@float32
def infonce_loss(z_s: torch.Tensor, z_t: torch.Tensor, queue: torch.Tensor, tau: float) -> torch.Tensor:
    """InfoNCE (MoCo form): the teacher's embedding of the same image is the positive, the queue the negatives."""
    pos = (z_s.float() * z_t.float()).sum(dim=1, keepdim=True)
    neg = z_s.float() @ queue.float().T
    logits = torch.cat([pos, neg], dim=1) / tau
    return F.cross_entropy(logits, torch.zeros(len(z_s), dtype=torch.long, device=z_s.device))


@float32
def strong_pair_ntxent(z: torch.Tensor, pairs: int, tau: float) -> torch.Tensor:
    """NT-Xent among `pairs` views of each image (SimCLR's loss, with SupCon's mean over several positives).

    `z`: (pairs x B, D) L2-normalized, draw-major (rows p*B..(p+1)*B-1 are draw p of the B images). Each row's
    positives are the other draws of its image; every other row of the batch is a negative. With 2 draws this is
    SimCLR's NT-Xent over 2B rows."""
    z = z.float()
    n = z.shape[0]
    image = torch.arange(n, device=z.device) % (n // pairs)
    self_mask = torch.eye(n, dtype=torch.bool, device=z.device)
    positive = (image[:, None] == image[None, :]) & ~self_mask
    log_p = F.log_softmax((z @ z.T / tau).masked_fill(self_mask, float("-inf")), dim=1)
    return -(log_p.masked_fill(~positive, 0).sum(dim=1) / positive.sum(dim=1)).mean()


@float32
def entropy(p: torch.Tensor) -> torch.Tensor:
    """Mean entropy (nats) of the rows of a probability matrix: near ln K means a flat, uninformative target."""
    p = p.float()
    return -(p * p.clamp_min(1e-12).log()).sum(dim=1).mean()


@float32
def mean_cosine(z: torch.Tensor) -> torch.Tensor:
    """Mean cosine between distinct rows of L2-normalized `z` (B, D): near 1 means the rows bunch together."""
    b, z = z.shape[0], z.float()
    return ((z @ z.T).sum() - b) / max(b * (b - 1), 1)
