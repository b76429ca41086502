"""The FIFO queue of past teacher embeddings (spec section 1)."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn


class EmbeddingQueue(nn.Module):
    """K x D L2-normalized embeddings, initialised random; `push` overwrites the oldest rows.

    A buffer-only module so that it is saved in the state dict and moved with `.to(device)`.
    """

    def __init__(self, size: int, dim: int, generator: torch.Generator | None = None) -> None:
        super().__init__()
        self.register_buffer("embeddings", F.normalize(torch.randn(size, dim, generator=generator), dim=1))
        self.register_buffer("ptr", torch.zeros((), dtype=torch.long))

    @property
    def size(self) -> int:
        return self.embeddings.shape[0]

    @torch.no_grad()
    def push(self, keys: torch.Tensor) -> None:
        """Enqueue a (global) batch; `size` is a multiple of the batch (checked at start-up), so no wrap inside."""
        n = keys.shape[0]
        idx = (self.ptr + torch.arange(n, device=keys.device)) % self.size  # tensor index: no host sync
        self.embeddings.index_copy_(0, idx, keys.to(self.embeddings.dtype))
        self.ptr.copy_((self.ptr + n) % self.size)
