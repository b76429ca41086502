import pickle
from pathlib import Path

import numpy as np
import pytest
import torchvision.datasets.cifar
import torchvision.datasets.stl10
from PIL import Image

from edgessl.config import DataConfig
from edgessl.data import CorruptImageWarning, build_dataset, image_folder
from edgessl.errors import EdgeSSLError


def _png(path: Path, colour: tuple[int, int, int] = (10, 200, 30), size: int = 12) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.new("RGB", (size, size), colour).save(path)


def _tree(root: Path, layout: dict[str, int]) -> Path:
    """`{"train/cat": 2, ...}` -> that many PNGs in each folder."""
    for folder, count in layout.items():
        for i in range(count):
            _png(root / folder / f"{i}.png")
    return root


def test_train_and_val_folders(tmp_path) -> None:
    root = _tree(tmp_path, {"train/cat": 2, "train/dog": 3, "train/eel": 1, "val/dog": 2, "val/eel": 1})
    train, test = image_folder(root, "train"), image_folder(root, "test")
    assert train.classes == test.classes == ["cat", "dog", "eel"]
    assert (len(train), len(test)) == (6, 3)
    assert sorted(test.targets) == [1, 1, 2]  # training label indices although "cat" is absent from val/
    img, label = test[0]
    assert img.mode == "RGB" and img.size == (12, 12) and label == 1


def test_test_folder_is_the_test_split(tmp_path) -> None:
    root = _tree(tmp_path, {"train/a": 1, "train/b": 1, "test/b": 2})
    assert image_folder(root, "test").targets == [1, 1]


def test_class_folders_directly_in_root_are_the_train_split(tmp_path) -> None:
    root = _tree(tmp_path, {"a": 2, "b": 2})
    assert len(image_folder(root, "train")) == 4
    with pytest.raises(EdgeSSLError, match=f"'{root}' has no test split"):
        image_folder(root, "test")


@pytest.mark.parametrize(
    ("layout", "message"),
    [
        ({}, "has no class folders"),
        ({"train/a": 0}, "Found no valid file for the classes a"),
        ({"train/a": 1, "val/zebra": 1}, "has classes not in .*: zebra"),
        ({"train/a": 1, "val/a": 0}, "has no images"),
        ({"train/a": 1, "val": 0}, "has no images"),
    ],
)
def test_empty_or_mismatched_folders(tmp_path, layout, message) -> None:
    for folder in layout:
        (tmp_path / folder).mkdir(parents=True)
    _tree(tmp_path, layout)
    split = "test" if any(k.startswith("val") for k in layout) else "train"
    with pytest.raises(EdgeSSLError, match=message) as info:
        image_folder(tmp_path, split)
    assert str(tmp_path) in str(info.value)


def test_missing_root(tmp_path) -> None:
    with pytest.raises(EdgeSSLError, match=f"'{tmp_path / 'nope'}' is not a folder"):
        build_dataset(DataConfig(format="imagefolder", root=str(tmp_path / "nope")), "train")


def test_corrupt_file_is_skipped_with_a_warning(tmp_path) -> None:
    root = _tree(tmp_path, {"train/a": 1, "train/b": 1})
    (root / "train/a/broken.png").write_bytes(b"\x89PNG\r\n\x1a\n not really")
    dataset = build_dataset(DataConfig(format="imagefolder", root=str(root)), "train")
    broken = [i for i, (path, _) in enumerate(dataset.source.samples) if path.endswith("broken.png")][0]
    with pytest.warns(CorruptImageWarning, match="broken.png"):
        img, _ = dataset[broken]
    assert img.size == (12, 12)


# torchvision's on-disk layouts, faked with a few images; its md5 checks are bypassed.
def _pickle(path: Path, obj: dict) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(pickle.dumps(obj))


def _cifar_batch(n: int, key: str) -> dict:
    return {"data": np.random.default_rng(n).integers(0, 256, (n, 3072), dtype=np.uint8), key: list(range(n))}


@pytest.fixture
def no_md5(monkeypatch) -> None:
    for module in (torchvision.datasets.cifar, torchvision.datasets.stl10):
        monkeypatch.setattr(module, "check_integrity", lambda path, md5=None: Path(path).is_file())


def test_cifar10_layout(tmp_path, no_md5) -> None:
    base = tmp_path / "cifar-10-batches-py"
    for i in range(1, 6):
        _pickle(base / f"data_batch_{i}", _cifar_batch(2, "labels"))
    _pickle(base / "test_batch", _cifar_batch(3, "labels"))
    _pickle(base / "batches.meta", {"label_names": [f"c{i}" for i in range(10)]})
    for root in (tmp_path, base):  # the parent folder, or the batches folder itself
        train = build_dataset(DataConfig(format="cifar10", root=str(root)), "train")
        test = build_dataset(DataConfig(format="cifar10", root=str(root)), "test")
        assert (len(train), len(test), len(train.classes)) == (10, 3, 10)
        assert train[0][0].size == (32, 32) and test[2][1] == 2


def test_cifar100_layout(tmp_path, no_md5) -> None:
    base = tmp_path / "cifar-100-python"
    _pickle(base / "train", _cifar_batch(4, "fine_labels"))
    _pickle(base / "test", _cifar_batch(2, "fine_labels"))
    _pickle(base / "meta", {"fine_label_names": [f"c{i}" for i in range(100)]})
    train = build_dataset(DataConfig(format="cifar100", root=str(tmp_path)), "train")
    assert (len(train), len(train.classes), train[3][1]) == (4, 100, 3)


def test_stl10_layout(tmp_path, no_md5) -> None:
    base = tmp_path / "stl10_binary"
    base.mkdir()
    images = lambda n: np.random.default_rng(n).integers(0, 256, n * 3 * 96 * 96, dtype=np.uint8)  # noqa: E731
    images(2).tofile(base / "train_X.bin")
    np.array([1, 10], np.uint8).tofile(base / "train_y.bin")  # 1-based on disk
    images(3).tofile(base / "unlabeled_X.bin")
    images(1).tofile(base / "test_X.bin")
    np.array([4], np.uint8).tofile(base / "test_y.bin")
    (base / "class_names.txt").write_text("\n".join(f"c{i}" for i in range(10)))
    cfg = DataConfig(format="stl10", root=str(tmp_path))
    ssl_train = build_dataset(cfg, "train")
    knn_train = build_dataset(cfg, "train", labelled=True)
    test = build_dataset(cfg, "test")
    assert ssl_train.targets.tolist() == [0, 9, -1, -1, -1] and knn_train.targets.tolist() == [0, 9]
    assert test[0][1] == 3 and test[0][0].size == (96, 96) and len(test.classes) == 10


@pytest.mark.parametrize("fmt", ["cifar10", "cifar100", "stl10"])
def test_missing_torchvision_files_say_how_to_fix(tmp_path, fmt) -> None:
    with pytest.raises(EdgeSSLError, match=f"in '{tmp_path}.*set data.download=true or fix data.root"):
        build_dataset(DataConfig(format=fmt, root=str(tmp_path)), "train")


def test_16_bit_png_is_scaled_not_clipped(tmp_path) -> None:
    grey = (np.arange(64 * 64).reshape(64, 64) * 16).astype(np.uint16)  # 0 .. 65520
    (tmp_path / "train" / "a").mkdir(parents=True)
    Image.fromarray(grey).save(tmp_path / "train" / "a" / "wide.png")
    assert Image.open(tmp_path / "train" / "a" / "wide.png").mode == "I;16"
    pixels = np.asarray(image_folder(tmp_path, "train")[0][0])
    assert pixels.shape == (64, 64, 3) and (pixels == 255).mean() < 0.01  # clipping made 99.6 % of them 255
    assert np.abs(pixels[..., 0].astype(float) - grey / 257).max() <= 0.5
