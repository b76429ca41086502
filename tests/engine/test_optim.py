"""Weight-decay groups and the warm-up + cosine schedule."""

import math

from torch import nn

from edgessl.config import OptimConfig
from edgessl.engine.optim import build_optimizer, lr_at, scaled_lr


def test_bn_and_bias_get_no_weight_decay():
    net = nn.Sequential(nn.Conv2d(3, 4, 3), nn.BatchNorm2d(4), nn.Linear(4, 2))
    opt = build_optimizer(net, OptimConfig(weight_decay=1e-4))
    decay, no_decay = opt.param_groups
    assert decay["weight_decay"] == 1e-4 and all(p.ndim > 1 for p in decay["params"])
    assert no_decay["weight_decay"] == 0.0 and len(no_decay["params"]) == 4  # conv bias, bn w/b, linear bias
    opt = build_optimizer(net, OptimConfig(weight_decay=1e-4, exclude_bn_bias=False))
    assert len(opt.param_groups) == 1


def test_lr_schedule_and_scaling():
    assert scaled_lr(OptimConfig(lr=0.05, base_batch=256), 1024) == 0.2
    assert lr_at(0, 100, 10, 1.0) == 0.1
    assert lr_at(9, 100, 10, 1.0) == 1.0
    assert lr_at(10, 100, 10, 1.0) == 1.0
    assert math.isclose(lr_at(55, 100, 10, 1.0), 0.5)
    assert lr_at(100, 100, 10, 1.0) == 0.0
