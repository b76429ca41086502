import re

import numpy as np
import pytest
import torch

from edgessl.config import DataConfig
from edgessl.data import (
    CorruptImageWarning,
    ImageDataset,
    TwoViews,
    balanced_subset,
    build_dataset,
    eval_transform,
    num_classes,
    strong_transform,
    weak_transform,
)
from edgessl.errors import EdgeSSLError


@pytest.mark.parametrize("size", [32, 64])
def test_synthetic_two_views_and_eval(size: int) -> None:
    cfg = DataConfig(image_size=size, synthetic_train=20, synthetic_test=10)
    train = build_dataset(cfg, "train", TwoViews(weak_transform(size), strong_transform(size)))
    (strong, weak), label = train[5]
    assert strong.shape == weak.shape == (3, size, size) and label == 5
    test = build_dataset(cfg, "test", eval_transform(size))
    assert (len(train), len(test), num_classes(test)) == (20, 10, 10)
    assert test[0][0].dtype == torch.float32


def test_train_samples_is_a_fixed_balanced_subset_of_train_only() -> None:
    cfg = DataConfig(synthetic_train=200, synthetic_test=50, train_samples=30)
    a, b = build_dataset(cfg, "train"), build_dataset(cfg, "train")
    assert len(a) == 30 and np.array_equal(a.indices, b.indices)
    assert np.bincount(a.targets).tolist() == [3] * 10
    assert a[0][1] == a.targets[0] and len(build_dataset(cfg, "test")) == 50


def test_balanced_subset() -> None:
    labels = np.array([0] * 10 + [1] * 2 + [2] * 10 + [-1] * 10)
    pick = balanced_subset(labels, 14)
    assert len(set(pick.tolist())) == 14 and np.all(np.diff(pick) > 0)
    assert sorted(np.unique(labels[pick], return_counts=True)[1].tolist()) == [2, 4, 4, 4]  # class 1 runs out
    assert np.array_equal(pick, balanced_subset(labels, 14))
    assert not np.array_equal(pick, balanced_subset(labels, 14, seed=1))


def test_bad_split_and_empty_root() -> None:
    with pytest.raises(EdgeSSLError, match="unknown data split 'validation'"):
        build_dataset(DataConfig(), "validation")
    for fmt in ("imagefolder", "cifar10", "npz"):
        with pytest.raises(EdgeSSLError, match=f"data.root is empty but data.format '{fmt}' needs one"):
            build_dataset(DataConfig(format=fmt), "train")


class _Items:
    """A source of 4 items; the ones in `broken` fail to decode."""

    classes = ["a", "b"]

    def __init__(self, path: str, broken: set[int]) -> None:
        self.path, self.broken, self.targets = path, broken, [0, 1, 0, 1]

    def __len__(self) -> int:
        return 4

    def __getitem__(self, index: int) -> tuple[str, int]:
        if index in self.broken:
            raise OSError("cannot identify image file")
        return f"img{index}", self.targets[index]


class _Files(_Items):
    """The same, read from files named by `path`: `describe` marks a source whose decode errors are skipped."""

    def describe(self, index: int) -> str:
        return f"{self.path}/{index}.jpg"


def _count(record) -> int:
    return int(re.search(r"(\d+) image\(s\) skipped so far", str(record.message)).group(1))


def test_corrupt_images_warn_once_each_with_a_running_count(tmp_path) -> None:
    dataset = ImageDataset(_Files(str(tmp_path), {1, 3}), transform=str.upper)
    with pytest.warns(CorruptImageWarning) as records:
        assert dataset[1] == ("IMG2", 0)
        assert dataset[3] == ("IMG0", 0)  # wraps around to the first readable image
        assert dataset[1] == ("IMG2", 0)  # already reported: no second warning
    assert len(records) == 2 and _count(records[1]) == _count(records[0]) + 1
    assert f"{tmp_path}/1.jpg" in str(records[0].message) and f"{tmp_path}/3.jpg" in str(records[1].message)


def test_all_corrupt_is_an_error_and_transform_errors_are_not_swallowed(tmp_path) -> None:
    with pytest.warns(CorruptImageWarning), pytest.raises(EdgeSSLError, match=f"{tmp_path}/0.jpg"):
        ImageDataset(_Files(str(tmp_path), {0, 1, 2, 3}))[0]
    with pytest.raises(ZeroDivisionError):
        ImageDataset(_Files(str(tmp_path), set()), transform=lambda img: 1 / 0)[0]


def test_sources_without_describe_do_not_skip() -> None:
    with pytest.raises(OSError):
        ImageDataset(_Items("x", {0}))[0]
