"""ReSSL's MLP heads: the projector (both branches) and the student-only predictor (journal extension)."""

from __future__ import annotations

from torch import nn


def mlp(in_dim: int, hidden: int, out_dim: int, bn: bool) -> nn.Sequential:
    """Linear-(BN)-ReLU-Linear. Official ReSSL projectors have no BN; the predictor uses it."""
    layers: list[nn.Module] = [nn.Linear(in_dim, hidden, bias=not bn)]
    if bn:
        layers.append(nn.BatchNorm1d(hidden))
    layers += [nn.ReLU(inplace=True), nn.Linear(hidden, out_dim)]
    return nn.Sequential(*layers)
