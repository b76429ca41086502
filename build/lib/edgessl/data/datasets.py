"""`build_dataset`: from a `DataConfig` to a map-style dataset of `(transformed image, int label)`.

Each `data.format` is one entry of `_SOURCES`, a function returning an untransformed source dataset of
`(PIL image, label)` with `targets` and `classes`. `ImageDataset` then applies the training-subset,
the transform and the skipping of unreadable images uniformly.
"""

from __future__ import annotations

import warnings
import zlib
from typing import Any, Callable, Sequence

import numpy as np
from PIL import Image
from torch.utils.data import Dataset

from edgessl.config import DataConfig
from edgessl.data.arrays import NpzImages
from edgessl.data.folders import cifar, image_folder, stl10
from edgessl.data.synthetic import SyntheticShapes
from edgessl.errors import EdgeSSLError

SPLITS = ("train", "test")
SYNTHETIC_MAX_SIZE = 64  # draw the built-in dataset at most this big; transforms upsample (drawing is the cost)
_DECODE_ERRORS = (OSError, SyntaxError, ValueError, zlib.error, Image.DecompressionBombError)
_skipped: set[str] = set()  # unreadable images met in this process


class CorruptImageWarning(UserWarning):
    """An image file could not be decoded and was skipped."""


def _root(cfg: DataConfig) -> str:
    if not cfg.root:
        raise EdgeSSLError(
            f"data.root is empty but data.format '{cfg.format}' needs one; set data.root to a folder "
            "(imagefolder, cifar10, cifar100, stl10) or a .npz file (npz, jpegbytes)"
        )
    return cfg.root


_SOURCES: dict[str, Callable[[DataConfig, str, bool], Dataset]] = {
    "synthetic": lambda cfg, split, labelled: SyntheticShapes(
        split, cfg.synthetic_train if split == "train" else cfg.synthetic_test, min(cfg.image_size, SYNTHETIC_MAX_SIZE)
    ),
    "imagefolder": lambda cfg, split, labelled: image_folder(_root(cfg), split),
    "cifar10": lambda cfg, split, labelled: cifar(_root(cfg), split, cfg.download, 10),
    "cifar100": lambda cfg, split, labelled: cifar(_root(cfg), split, cfg.download, 100),
    "stl10": lambda cfg, split, labelled: stl10(_root(cfg), split, cfg.download, labelled),
    "npz": lambda cfg, split, labelled: NpzImages(_root(cfg), split),
    "jpegbytes": lambda cfg, split, labelled: NpzImages(_root(cfg), split),
}


def balanced_subset(targets: Sequence[int] | np.ndarray, n: int, seed: int = 0) -> np.ndarray:
    """Sorted indices of `n` items with class counts as equal as possible; the same for the same inputs.

    Items are shuffled with `seed`, then taken round-robin over classes (a class that runs out leaves its
    share to the others). Unlabelled items (label -1) count as one more class.
    """
    labels = np.asarray(targets)
    order = np.random.default_rng(seed).permutation(len(labels))
    shuffled = labels[order]
    by_class = np.argsort(shuffled, kind="stable")
    first = np.searchsorted(shuffled[by_class], shuffled[by_class])  # where each item's class starts
    rank = np.empty(len(labels), dtype=np.int64)
    rank[by_class] = np.arange(len(labels)) - first  # position of each item within its class
    return np.sort(order[np.lexsort((shuffled, rank))[:n]])


def _warn_skip(source: Dataset, index: int, exc: Exception) -> None:
    """Warn once per unreadable image, with a running count for this process."""
    where = source.describe(index)
    if where in _skipped:
        return
    _skipped.add(where)
    warnings.warn(
        f"skipping unreadable image {where} ({type(exc).__name__}: {exc}); "
        f"{len(_skipped)} image(s) skipped so far in this process",
        CorruptImageWarning,
        stacklevel=3,
    )


class ImageDataset(Dataset):
    """Items `(transform(image), label)` of `source`, restricted to `indices` when given.

    Sources that decode image files (those with a `describe(index)` method: image folders and npz files)
    may hold corrupt or truncated files: such an image is skipped with a `CorruptImageWarning` (once
    per file, naming it and the count skipped so far in this process) and the next readable item is
    returned instead, so one bad file does not stop a long run. Errors from the transform are not caught.
    """

    def __init__(self, source: Dataset, transform: Callable | None = None, indices: np.ndarray | None = None) -> None:
        self.source, self.transform = source, transform
        self.indices = np.arange(len(source)) if indices is None else np.asarray(indices)
        self.targets = np.asarray(source.targets)[self.indices]
        self.classes = list(source.classes)
        self._skips = _DECODE_ERRORS if hasattr(source, "describe") else ()

    def __len__(self) -> int:
        return len(self.indices)

    def __getitem__(self, index: int) -> tuple[Any, int]:
        if not 0 <= index < len(self):
            raise IndexError(f"index {index} out of range for {len(self)} items")
        for step in range(len(self)):
            i = int(self.indices[(index + step) % len(self)])
            try:
                img, label = self.source[i]
            except self._skips as exc:
                _warn_skip(self.source, i, exc)
                continue
            return (self.transform(img) if self.transform is not None else img), int(label)
        first = self.source.describe(int(self.indices[0]))
        raise EdgeSSLError(f"none of the {len(self)} images could be read (first: {first}); check data.root")


def build_dataset(
    cfg: DataConfig, split: str, transform: Callable | None = None, labelled: bool = False
) -> ImageDataset:
    """The `split` ("train" or "test") of the data `cfg` describes, with `transform` applied to each image.

    `labelled=True` asks for labelled images only (kNN / linear evaluation); it matters for STL-10, whose
    self-supervised training split also holds 100k unlabelled images (label -1). `cfg.train_samples > 0`
    keeps a fixed class-balanced subset of that many training images (`balanced_subset`, seed 0).
    """
    if split not in SPLITS:
        raise EdgeSSLError(f"unknown data split '{split}'; use one of {', '.join(SPLITS)}")
    source = _SOURCES[cfg.format](cfg, split, labelled)
    indices = None
    if split == "train" and 0 < cfg.train_samples < len(source):
        indices = balanced_subset(source.targets, cfg.train_samples)
    return ImageDataset(source, transform, indices)


def num_classes(dataset: Dataset) -> int:
    """Number of classes of a dataset with `classes` (every edgessl dataset), else 1 + the largest target."""
    classes = getattr(dataset, "classes", None)
    return len(classes) if classes is not None else int(np.max(dataset.targets)) + 1
