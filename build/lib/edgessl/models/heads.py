"""ReSSL's MLP heads: the projector (both branches) and the student-only predictor (journal extension)."""

from __future__ import annotations

from collections import OrderedDict

import torch
import torch.nn.functional as F
from torch import nn


class L2Norm(nn.Module):
    """Scale each row to unit L2 norm (no parameters)."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.normalize(x, dim=1)


def mlp(in_dim: int, hidden: int, out_dim: int, bn: bool, out_bn: bool = False, in_norm: bool = False
        ) -> nn.Sequential:
    """(L2-norm)-Linear-(BN)-ReLU-Linear(-BN). Official ReSSL projectors have no BN; the predictor uses it in the
    hidden layer. `out_bn` adds a parameter-free BN on the output (MoCo v3 style): it centres each output dimension
    over the batch, so the embeddings cannot bunch into one direction (the failure mode that flattens ReSSL's
    target). `in_norm` L2-normalizes the input first: MobileNetV3's pooled features have a few images with ~100x
    the median norm, which then dominate the batch statistics of the BNs after them. The layers keep the names
    "0", "1", ... with or without it (the norm is "in_norm"), so state-dict keys do not change."""
    layers: list[nn.Module] = [nn.Linear(in_dim, hidden, bias=not bn)]
    if bn:
        layers.append(nn.BatchNorm1d(hidden))
    layers += [nn.ReLU(inplace=True), nn.Linear(hidden, out_dim, bias=not out_bn)]
    if out_bn:
        layers.append(nn.BatchNorm1d(out_dim, affine=False))
    named = [("in_norm", L2Norm())] * in_norm + [(str(i), layer) for i, layer in enumerate(layers)]
    return nn.Sequential(OrderedDict(named))
