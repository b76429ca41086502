import numpy as np
import pytest

from edgessl.data.synthetic import CLASS_NAMES, SyntheticShapes
from edgessl.errors import EdgeSSLError


def _pixels(dataset: SyntheticShapes, index: int) -> np.ndarray:
    return np.asarray(dataset[index][0])


@pytest.mark.parametrize("size", [32, 64])
def test_images_are_rgb_at_the_requested_size(size: int) -> None:
    img, label = SyntheticShapes("train", 20, size)[3]
    assert img.mode == "RGB" and img.size == (size, size) and label == 3


def test_same_index_gives_the_same_image() -> None:
    a, b = SyntheticShapes("train", 50), SyntheticShapes("train", 50)
    assert all(np.array_equal(_pixels(a, i), _pixels(b, i)) for i in (0, 7, 49))


def test_splits_and_seeds_give_different_images() -> None:
    train, test, other = SyntheticShapes("train", 50), SyntheticShapes("test", 50), SyntheticShapes("train", 50, seed=1)
    for i in range(10):
        assert not np.array_equal(_pixels(train, i), _pixels(test, i))
        assert not np.array_equal(_pixels(train, i), _pixels(other, i))


def test_ten_balanced_classes() -> None:
    dataset = SyntheticShapes("test", 100)
    assert list(dataset.class_names) == list(dataset.classes) == list(CLASS_NAMES) and len(CLASS_NAMES) == 10
    labels = [dataset[i][1] for i in range(len(dataset))]
    assert labels == list(dataset.targets) and np.bincount(labels).tolist() == [10] * 10


def test_images_of_a_class_vary() -> None:
    dataset = SyntheticShapes("train", 40)
    assert not np.array_equal(_pixels(dataset, 0), _pixels(dataset, 10))


def test_bad_split_and_index() -> None:
    with pytest.raises(EdgeSSLError, match="unknown split 'val'"):
        SyntheticShapes("val", 10)
    with pytest.raises(IndexError):
        SyntheticShapes("train", 10)[10]


def test_views_of_a_class_share_its_scene() -> None:
    """Classes are fixed scenes: a view is nearer its own class's mean image than any other class's mean."""
    train, test = SyntheticShapes("train", 200, 16), SyntheticShapes("test", 50, 16)
    images = np.stack([_pixels(train, i) for i in range(len(train))]).astype(np.float32)
    means = np.stack([images[train.targets == c].mean(0) for c in range(10)])
    queries = np.stack([_pixels(test, i) for i in range(len(test))]).astype(np.float32)
    nearest = ((queries[:, None] - means[None]) ** 2).sum(axis=(2, 3, 4)).argmin(1)
    assert (nearest == test.targets).mean() > 0.5  # chance is 0.1
