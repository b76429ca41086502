"""ReSSL's MLP heads: the projector (both branches) and the student-only predictor (journal extension)."""

from __future__ import annotations

from torch import nn


def mlp(in_dim: int, hidden: int, out_dim: int, bn: bool, out_bn: bool = False) -> nn.Sequential:
    """Linear-(BN)-ReLU-Linear(-BN). Official ReSSL projectors have no BN; the predictor uses it in the hidden
    layer. `out_bn` adds a parameter-free BN on the output (MoCo v3 style): it centres each output dimension over
    the batch, so the embeddings cannot bunch into one direction (the failure mode that flattens ReSSL's target)."""
    layers: list[nn.Module] = [nn.Linear(in_dim, hidden, bias=not bn)]
    if bn:
        layers.append(nn.BatchNorm1d(hidden))
    layers += [nn.ReLU(inplace=True), nn.Linear(hidden, out_dim, bias=not out_bn)]
    if out_bn:
        layers.append(nn.BatchNorm1d(out_dim, affine=False))
    return nn.Sequential(*layers)
