"""The on-device check: run an artifact in its own runtime on the recipe's data and compare it with PyTorch fp32.

Per artifact: cosine similarity of its test-split embeddings to PyTorch's (mean and min over images); weighted kNN
top-1 (the recipe's k and temperature) and its change from PyTorch's in points; median batch-1 latency after
warm-up with the profile's threads; file size.

kNN choice: the artifact's own TRAIN features form the kNN bank (queried by its own test features), as on a
device that builds its gallery with the same model. The reference is PyTorch fp32 with a PyTorch bank, so the
delta measures what a deployment loses end to end, not only query-side noise.
"""

from __future__ import annotations

import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from edgessl.export.base import Runner, cosine

if TYPE_CHECKING:
    from torch import nn

    from edgessl.measure.knn import KnnResult


@dataclass(frozen=True)
class Reference:
    """PyTorch fp32 test-split features and kNN top-1: what every artifact is compared with."""

    test_feats: np.ndarray
    knn_top1: float
    k: int
    temperature: float
    num_train: int


def torch_runner(model: nn.Module) -> Runner:
    """The PyTorch encoder (eval mode, CPU, fp32) behind the `Runner` interface."""
    import torch

    @torch.no_grad()
    def run(images: np.ndarray) -> np.ndarray:
        return model(torch.from_numpy(np.ascontiguousarray(images, dtype=np.float32))).flatten(1).numpy()

    return run


def _knn(runner: Runner, loaders: Sequence[Iterable], k: int, temperature: float) -> KnnResult:
    """`knn_top1` of a runtime's runner (numpy in, numpy out) over the (train, test) loaders."""
    import torch

    from edgessl.measure.knn import knn_top1

    def as_torch(images: torch.Tensor) -> torch.Tensor:
        return torch.from_numpy(np.asarray(runner(np.asarray(images, dtype=np.float32))))

    return knn_top1(as_torch, loaders, k=k, temperature=temperature)


def embeddings(runner: Runner, batches: Iterable) -> np.ndarray:
    """A runner's embeddings of one loader's images, in order (no kNN)."""
    return np.concatenate([np.asarray(runner(np.asarray(images, dtype=np.float32))) for images, _ in batches])


def reference(model: nn.Module, train: Iterable, test: Iterable, k: int, temperature: float) -> Reference:
    """PyTorch fp32 features and kNN top-1 over the two splits."""
    result = _knn(torch_runner(model), (train, test), k, temperature)
    return Reference(result.test[0].numpy(), result.top1, k, temperature, len(result.train[1]))


def latency_samples_ms(runner: Runner, image: np.ndarray, warmup: int, runs: int) -> np.ndarray:
    """Wall times (ms) of `runs` batch-1 calls after `warmup` untimed ones."""
    for _ in range(warmup):
        runner(image)
    times = []
    for _ in range(runs):
        start = time.perf_counter()
        runner(image)
        times.append(time.perf_counter() - start)
    return np.asarray(times) * 1000


def latency_ms(runner: Runner, image: np.ndarray, warmup: int, runs: int) -> float:
    """Median wall time (ms) of `runs` batch-1 calls after `warmup` untimed ones."""
    return float(np.median(latency_samples_ms(runner, image, warmup, runs)))


def paired_latency_ms(runners: Sequence[Runner], image: np.ndarray, warmup: int, runs: int,
                      rounds: int = 3) -> list[float]:
    """Each runner's batch-1 latency, timed in `rounds` interleaved rounds (a `latency_ms` per runner per round),
    the fastest round kept: host load that drifts during an export hits all runners alike, so their ratio holds."""
    times = [[latency_ms(r, image, warmup, runs) for r in runners] for _ in range(rounds)]
    return [min(column) for column in zip(*times)]


def size_mb(files: Iterable[Path]) -> float:
    """Total size of an artifact's files in MB (10^6 bytes)."""
    return sum(f.stat().st_size for f in files if f.is_file()) / 1e6


@dataclass
class Measurement:
    """What the check measured for one artifact."""

    cosine_mean: float
    cosine_min: float
    knn_top1: float
    knn_delta: float  # points, artifact minus PyTorch fp32 (negative = lost accuracy)
    latency_ms: float
    test_feats: np.ndarray | None = field(default=None, repr=False)  # its test embeddings (consumer checks)


def measure(runner: Runner, ref: Reference, train: Iterable, test: Iterable, image: np.ndarray, warmup: int,
            runs: int) -> Measurement:
    """Run `runner` on both splits and time it; compare with `ref`."""
    result = _knn(runner, (train, test), ref.k, ref.temperature)
    cos = cosine(result.test[0].numpy(), ref.test_feats)
    top1 = result.top1
    return Measurement(float(cos.mean()), float(cos.min()), top1, top1 - ref.knn_top1,
                       latency_ms(runner, image, warmup, runs), result.test[0].numpy())
