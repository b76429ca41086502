"""Linear probe on cached features: learns separable data; reports best and last epoch."""

import pytest
import torch

from edgessl.errors import EdgeSSLError
from edgessl.measure.linear_probe import linear_probe


def _separable(n: int, seed: int):
    # labels = argmax of a fixed linear map (linearly separable by construction); feature scales differ by 1e4
    x = torch.randn(n, 8, generator=torch.Generator().manual_seed(seed))
    y = (x @ torch.randn(8, 4, generator=torch.Generator().manual_seed(99))).argmax(1)
    return x * torch.tensor([100.0, 0.01, 1, 1, 1, 1, 1, 1]), y


def test_learns_linearly_separable_data():
    res = linear_probe(*_separable(400, 0), *_separable(300, 1), epochs=15, batch_size=100)
    assert res["best"]["top1"] >= 95.0 and res["last"]["top1"] >= 90.0
    assert res["last"]["epoch"] == 15 and 1 <= res["best"]["epoch"] <= 15
    assert res["best"]["top1"] >= res["last"]["top1"]
    assert res["last"]["top5"] == 100.0  # 4 classes


def test_is_deterministic_for_a_seed():
    a = linear_probe(*_separable(200, 0), *_separable(100, 1), epochs=3, seed=5)
    b = linear_probe(*_separable(200, 0), *_separable(100, 1), epochs=3, seed=5)
    assert a == b


def test_bad_settings_are_clear_errors():
    x, y = _separable(10, 0)
    with pytest.raises(EdgeSSLError, match="epochs"):
        linear_probe(x, y, x, y, epochs=0)
    with pytest.raises(EdgeSSLError, match="empty"):
        linear_probe(x[:0], y[:0], x, y)
