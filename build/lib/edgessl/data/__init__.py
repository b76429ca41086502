"""Datasets and ReSSL's augmentations: `build_dataset(cfg.data, split, transform)` is the entry point."""

from edgessl.data.arrays import NpzImages
from edgessl.data.datasets import CorruptImageWarning, ImageDataset, balanced_subset, build_dataset, num_classes
from edgessl.data.folders import cifar, image_folder, stl10
from edgessl.data.synthetic import SyntheticShapes
from edgessl.data.transforms import MEAN, STD, TwoViews, eval_transform, strong_transform, weak_transform

__all__ = [
    "MEAN",
    "STD",
    "CorruptImageWarning",
    "ImageDataset",
    "NpzImages",
    "SyntheticShapes",
    "TwoViews",
    "balanced_subset",
    "build_dataset",
    "cifar",
    "eval_transform",
    "image_folder",
    "num_classes",
    "stl10",
    "strong_transform",
    "weak_transform",
]
