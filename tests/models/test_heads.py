"""The MLP heads: shapes, and the output BN that keeps embeddings from bunching into one direction."""

import torch
import torch.nn.functional as F

from edgessl.models.heads import mlp


def _mean_cosine(z: torch.Tensor) -> float:
    z = F.normalize(z, dim=1)
    b = len(z)
    return float(((z @ z.T).sum() - b) / (b * (b - 1)))


def test_output_bn_centres_each_dimension_and_undoes_bunching():
    torch.manual_seed(0)
    x = torch.randn(64, 32) * 0.1 + torch.randn(32)  # inputs sharing one large common component
    plain, centred = mlp(32, 64, 16, bn=False), mlp(32, 64, 16, bn=False, out_bn=True)
    centred[0].load_state_dict(plain[0].state_dict())
    assert _mean_cosine(plain(x)) > 0.9  # bunched
    z = centred(x)
    assert torch.allclose(z.mean(0), torch.zeros(16), atol=1e-5) and abs(_mean_cosine(z)) < 0.05
    assert sum(p.numel() for p in centred[-1].parameters()) == 0  # parameter-free: nothing for the EMA to average


def test_default_projector_has_no_batchnorm():
    assert not any(isinstance(m, torch.nn.BatchNorm1d) for m in mlp(8, 16, 4, bn=False))
