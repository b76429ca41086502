"""Split-BN equals BN applied to each interleaved group; the shuffled teacher forward is order-preserving."""

import torch
from torch import nn
from timm.layers import BatchNormAct2d

from edgessl.methods.batchnorm import shuffled_forward, use_split_bn, usable_splits


def test_split_bn_normalizes_each_group_separately():
    torch.manual_seed(0)
    x = torch.randn(8, 3, 4, 4) * torch.arange(1, 9).view(8, 1, 1, 1)
    bn = nn.BatchNorm2d(3)
    ref = nn.BatchNorm2d(3)
    use_split_bn(bn, 2)
    out = bn(x)
    for r in range(2):  # group r = samples r, r+2, r+4, ...
        ref_out = nn.BatchNorm2d(3)(x[r::2])
        assert torch.allclose(out[r::2], ref_out, atol=1e-5)
    # running stats: the mean over the groups' updates
    means = [x[r::2].mean((0, 2, 3)) for r in range(2)]
    assert torch.allclose(bn.running_mean, 0.1 * (means[0] + means[1]) / 2, atol=1e-6)
    ref.eval(), bn.eval()
    assert torch.allclose(bn(x), nn.functional.batch_norm(x, bn.running_mean, bn.running_var, bn.weight, bn.bias))


def test_split_bn_keeps_timm_activation():
    bn = BatchNormAct2d(3, act_layer=nn.ReLU)
    use_split_bn(bn, 4)
    assert (bn(torch.randn(8, 3, 2, 2)) >= 0).all()


def test_shuffled_forward_returns_original_order():
    net = nn.Sequential(nn.Conv2d(3, 4, 1), nn.BatchNorm2d(4), nn.Flatten())
    x = torch.randn(6, 3, 2, 2)
    net.eval()
    assert torch.allclose(shuffled_forward(net, x, across_ranks=False), net(x), atol=1e-6)


def test_usable_splits_divides_batch():
    assert usable_splits(128, 8) == 8
    assert usable_splits(12, 8) == 6
