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


def test_input_norm_makes_the_projector_scale_free_and_keeps_state_dict_keys():
    torch.manual_seed(0)
    plain, normed = mlp(32, 64, 16, bn=True, out_bn=True), mlp(32, 64, 16, bn=True, out_bn=True, in_norm=True)
    assert list(plain.state_dict()) == list(normed.state_dict())
    normed.load_state_dict(plain.state_dict())
    x = torch.randn(64, 32)
    x[0] *= 100.0  # one image with a huge feature norm, as MobileNetV3's pooled features have
    scales = torch.rand(64, 1) * 10 + 0.1
    assert torch.allclose(normed(x), normed(x * scales), atol=1e-4)
    assert not torch.allclose(plain(x), plain(x * scales), atol=1e-2)
