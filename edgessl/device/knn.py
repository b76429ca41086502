"""Weighted kNN top-1 in numpy, for the board (no torch): the same rule as `edgessl.measure.knn`.

Each query votes with its k most cosine-similar bank features; a neighbour of class c adds exp(sim / T) to class
c's score. A test checks that it agrees with the torch implementation the host check uses.
"""

from __future__ import annotations

import numpy as np

from edgessl.errors import EdgeSSLError


def _unit(x: np.ndarray) -> np.ndarray:
    return x / np.maximum(np.linalg.norm(x, axis=1, keepdims=True), 1e-12)


def knn_top1(bank: np.ndarray, bank_labels: np.ndarray, queries: np.ndarray, labels: np.ndarray, k: int,
             temperature: float, chunk: int = 256) -> float:
    """Top-1 accuracy (percent) of `queries` against `bank`; `k` is clipped to the bank size."""
    if len(bank) == 0 or len(queries) == 0:
        raise EdgeSSLError("kNN needs at least one bank and one query embedding; the bundle's arrays are empty")
    if temperature <= 0:
        raise EdgeSSLError(f"kNN temperature must be > 0; got {temperature}")
    bank = _unit(bank.astype(np.float32))
    bank_labels = bank_labels.astype(np.int64)
    num_classes = int(max(bank_labels.max(), labels.max())) + 1
    k = max(1, min(k, len(bank)))
    correct = 0
    for start in range(0, len(queries), chunk):
        sims = _unit(queries[start:start + chunk].astype(np.float32)) @ bank.T
        idx = np.argpartition(-sims, k - 1, axis=1)[:, :k]
        top = np.take_along_axis(sims, idx, axis=1)
        weights = np.exp((top - top.max(axis=1, keepdims=True)) / temperature)  # same ranking, never overflows
        scores = np.zeros((len(sims), num_classes), np.float32)
        np.add.at(scores, (np.arange(len(sims))[:, None], bank_labels[idx]), weights)
        correct += int((scores.argmax(axis=1) == labels[start:start + chunk]).sum())
    return 100.0 * correct / len(queries)
