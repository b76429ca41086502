"""Consumer checks: run an exported artifact in a runtime boards use besides the target's own (OpenCV DNN).

An artifact can load and run in another runtime without a warning and still give wrong embeddings (OpenCV 5.1.0
on the dynamo exporter's MobileNetV3 graph: cosine 0.57 to PyTorch; see `edgessl.export.onnx_graph`). A consumer
row is measured like any runtime row (cosine to PyTorch, kNN top-1 and its change, latency) and is compared with
the artifact's own runtime: a cosine mean to PyTorch more than `AGREE` below the runtime's fails the row, with a
one-line note naming the consumer, whatever the kNN says. (Not the cosine to the runtime's own embeddings: on a
trained int8 MobileNetV3 OpenCV and ONNX Runtime were both 0.98951 to PyTorch, kNN 0.04 pt apart, yet only 0.998
to each other, as they round requantization differently; that cosine goes in the row's note.)

Consumers are optional packages (`pip install 'edgessl[consumers]'`): `--consumers auto` (export's default) uses
the installed ones and logs the others as skipped; naming a missing one is an error.
"""

from __future__ import annotations

import importlib.util
import math
import multiprocessing
import signal
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path

import numpy as np

from edgessl.errors import EdgeSSLError
from edgessl.export.base import Runner, Target, loop_batch
from edgessl.export.check import Reference, cosine, embeddings, measure
from edgessl.export.profiles import Profile
from edgessl.export.table import Row, status

PROBE_TIMEOUT = 300.0  # seconds for a consumer to load an artifact and run one image in the crash probe
AGREE = 0.001  # max drop of a consumer's cosine mean to PyTorch below the target runtime's on the same artifact


def _opencv(path: Path, threads: int) -> Runner:
    import cv2

    cv2.setNumThreads(threads)
    net = cv2.dnn.readNetFromONNX(str(path))

    def run_one(x: np.ndarray) -> np.ndarray:
        net.setInput(x)
        return net.forward()

    return loop_batch(run_one)


@dataclass(frozen=True)
class Consumer:
    """A runtime that loads some targets' artifacts: how to find, name and run it."""

    name: str  # the --consumers value
    module: str  # importable module
    distribution: str  # pip distribution (its version goes in the runtime column)
    requirement: str  # what to pip install
    targets: tuple[str, ...]  # target names whose artifacts it reads
    load: Callable[[Path, int], Runner]

    def installed(self) -> bool:
        return importlib.util.find_spec(self.module) is not None

    def runtime(self) -> str:
        return f"{self.name} {metadata.version(self.distribution)}"

    def crash(self, path: Path, image: np.ndarray) -> str | None:
        """Load `path` and run `image` in a child process first: a consumer that crashes on a graph (OpenCV 5.1.0
        segfaults on RepViT's and FastViT's) then fails its row instead of killing the export. None when it ran."""
        ctx = multiprocessing.get_context("spawn")
        child = ctx.Process(target=_probe, args=(self.load, str(path), image), daemon=True)
        child.start()
        child.join(PROBE_TIMEOUT)
        if child.is_alive():
            child.kill()
            child.join()
            return f"{self.name} did not finish one image in {PROBE_TIMEOUT:.0f} s"
        code = child.exitcode or 0
        if code < 0:
            return f"{self.name} crashed on this file ({signal.Signals(-code).name})"
        return None if code == 0 else f"{self.name} failed to load or run this file (exit code {code})"


CONSUMERS: dict[str, Consumer] = {
    "opencv": Consumer("opencv", "cv2", "opencv-python-headless", "opencv-python-headless==5.1.0.95", ("onnx",),
                       _opencv),
}


def _probe(load: Callable[[Path, int], Runner], path: str, image: np.ndarray) -> None:
    """The child of `Consumer.crash`: one forward pass; a Python error exits 1, a crash by its signal."""
    load(Path(path), 1)(image)


def resolve(spec: str, targets: Sequence[str], log: Callable[[str], None] = print) -> list[Consumer]:
    """`--consumers` for artifacts of `targets`: "auto" = every installed consumer (missing ones logged), "none"
    or "" = none, else a comma-separated list of consumers that must be installed and read one of `targets`."""
    if spec in ("", "none"):
        return []
    if spec == "auto":
        for c in CONSUMERS.values():
            if not c.installed() and set(c.targets) & set(targets):
                log(f"consumer check '{c.name}' skipped: {c.requirement} is not installed "
                    "(pip install 'edgessl[consumers]')")
        return [c for c in CONSUMERS.values() if c.installed()]
    chosen = []
    for name in (n.strip() for n in spec.split(",") if n.strip()):
        if name not in CONSUMERS:
            raise EdgeSSLError(f"unknown consumer '{name}' in --consumers; choose from: auto, none, "
                               f"{', '.join(CONSUMERS)}")
        if not CONSUMERS[name].installed():
            raise EdgeSSLError(f"consumer '{name}' needs {CONSUMERS[name].requirement}: pip install "
                               f"'{CONSUMERS[name].requirement}' (or pip install 'edgessl[consumers]')")
        if not set(CONSUMERS[name].targets) & set(targets):
            raise EdgeSSLError(f"consumer '{name}' reads {', '.join(CONSUMERS[name].targets)} artifacts, not "
                               f"{', '.join(targets)}; drop --consumers {name} or export --target onnx")
        chosen.append(CONSUMERS[name])
    return chosen


def consumer_rows(consumers: Sequence[Consumer], target: Target, precision: str, path: Path, profile: Profile,
                  ref: Reference, loaders: tuple[Iterable, Iterable], image: np.ndarray, tolerance: float,
                  runtime_row: Row) -> list[Row]:
    """One row per consumer of `target`'s artifact at `path`, judged against PyTorch and `runtime_row`."""
    mine = [c for c in consumers if target.name in c.targets]
    if not mine:
        return []
    own = embeddings(target.load(path, profile.threads), loaders[1])
    rows = []
    for consumer in mine:
        crashed = consumer.crash(path, image)
        if crashed:
            rows.append(Row(target.name, consumer.runtime(), precision, "fail", path.name, runtime_row.size_mb,
                            math.nan, math.nan, math.nan, math.nan, math.nan, None, profile.threads,
                            f"{crashed}; do not deploy this file with {consumer.name}", runtime_row.method))
            continue
        runner = consumer.load(path, profile.threads)
        m = measure(runner, ref, *loaders, image, profile.warmup, profile.runs)
        agree = float(cosine(m.test_feats, own).mean())
        versus = (f"vs {target.runtime} on the same file: cosine {agree:.5f}, "
                  f"kNN {m.knn_top1 - runtime_row.knn_top1:+.2f} pt")
        ok = m.cosine_mean >= runtime_row.cosine_mean - AGREE
        note = versus if ok else (f"{consumer.name} disagrees with {target.runtime}: cosine to PyTorch "
                                  f"{m.cosine_mean:.5f} vs {runtime_row.cosine_mean:.5f}; do not deploy this file "
                                  f"with {consumer.name}")
        row_status = status(m.knn_delta, tolerance) if ok else "fail"
        rows.append(Row(target.name, consumer.runtime(), precision, row_status, path.name, runtime_row.size_mb,
                        m.cosine_mean, m.cosine_min, m.knn_top1, m.knn_delta, m.latency_ms, None, profile.threads,
                        note, runtime_row.method))
    return rows
