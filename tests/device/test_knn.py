"""The board's numpy kNN agrees with the torch kNN the host check uses."""

import numpy as np
import pytest
import torch

from edgessl.device.knn import knn_top1
from edgessl.errors import EdgeSSLError
from edgessl.measure.knn import knn_classify


@pytest.mark.parametrize("k, temperature", [(1, 0.1), (20, 0.07), (500, 0.5)])
def test_matches_torch_knn(k: int, temperature: float) -> None:
    rng = np.random.default_rng(k)
    centers = rng.normal(size=(5, 16))
    bank_labels, labels = rng.integers(0, 5, 300), rng.integers(0, 5, 120)
    bank = (centers[bank_labels] + rng.normal(size=(300, 16))).astype(np.float32)
    queries = (centers[labels] + rng.normal(size=(120, 16))).astype(np.float32)
    expected = knn_classify(torch.from_numpy(bank), torch.from_numpy(bank_labels), torch.from_numpy(queries),
                            torch.from_numpy(labels), k=k, temperature=temperature)["top1"]
    got = knn_top1(bank, bank_labels, queries, labels, k, temperature, chunk=50)
    assert got == pytest.approx(expected) and 20 < got < 100  # separable clusters: well above chance


def test_bad_input() -> None:
    with pytest.raises(EdgeSSLError, match="at least one"):
        knn_top1(np.zeros((0, 4)), np.zeros(0, int), np.ones((2, 4)), np.zeros(2, int), 5, 0.1)
    with pytest.raises(EdgeSSLError, match="temperature must be > 0"):
        knn_top1(np.ones((3, 4)), np.zeros(3, int), np.ones((2, 4)), np.zeros(2, int), 5, 0.0)
