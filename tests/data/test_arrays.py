import io
import warnings

import numpy as np
import pytest
from PIL import Image

from edgessl.config import DataConfig
from edgessl.data import CorruptImageWarning, NpzImages, build_dataset
from edgessl.errors import EdgeSSLError


def _images(n: int, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, (n, 16, 16, 3), dtype=np.uint8)


def _jpeg_arrays(images: np.ndarray, prefix: str) -> dict[str, np.ndarray]:
    blobs = []
    for img in images:
        out = io.BytesIO()
        Image.fromarray(img).save(out, format="JPEG", quality=100, subsampling=0)
        blobs.append(np.frombuffer(out.getvalue(), dtype=np.uint8))
    offsets = np.concatenate([[0], np.cumsum([len(b) for b in blobs])]).astype(np.int64)
    return {f"{prefix}_jpeg": np.concatenate(blobs), f"{prefix}_offsets": offsets}


@pytest.fixture
def array_npz(tmp_path):
    path = tmp_path / "arrays.npz"
    np.savez(path, train_images=_images(6), train_labels=np.arange(6) % 3, test_images=_images(3, 1),
             test_labels=np.arange(3), class_names=np.array(["a", "b", "c"]))
    return path


@pytest.fixture
def jpeg_npz(tmp_path):
    path = tmp_path / "jpeg.npz"
    train, val = _images(6), _images(3, 1)
    np.savez(path, **_jpeg_arrays(train, "train"), train_labels=np.arange(6) % 3,
             **_jpeg_arrays(val, "val"), val_labels=np.arange(3))  # "val" serves as the test split
    return path


def test_decoded_arrays_load(array_npz) -> None:
    train, test = NpzImages(array_npz, "train"), NpzImages(array_npz, "test")
    assert (train.layout, len(train), len(test), train.classes) == ("images", 6, 3, ["a", "b", "c"])
    img, label = train[4]
    assert img.mode == "RGB" and np.array_equal(np.asarray(img), _images(6)[4]) and label == 1


def test_jpeg_bytes_load_and_decode(jpeg_npz) -> None:
    train, test = NpzImages(jpeg_npz, "train"), NpzImages(jpeg_npz, "test")
    assert (train.layout, len(train), len(test), train.classes) == ("jpeg", 6, 3, ["0", "1", "2"])
    img, label = test[2]
    error = np.abs(np.asarray(img, dtype=int) - _images(3, 1)[2]).mean()
    assert img.size == (16, 16) and label == 2 and error < 5  # lossy, but the same image


@pytest.mark.parametrize("fmt", ["npz", "jpegbytes"])
def test_both_formats_autodetect_the_layout(fmt, array_npz, jpeg_npz) -> None:
    for path in (array_npz, jpeg_npz):
        dataset = build_dataset(DataConfig(format=fmt, root=str(path)), "train")
        assert len(dataset) == 6 and dataset[0][0].size == (16, 16)


def test_corrupt_jpeg_is_skipped_with_a_warning(tmp_path) -> None:
    arrays = _jpeg_arrays(_images(3), "train")
    start, end = arrays["train_offsets"][1:3]
    arrays["train_jpeg"][start:end] = 0  # image 1 is garbage
    path = tmp_path / "corrupt.npz"
    np.savez(path, **arrays, train_labels=np.array([0, 1, 2]))
    dataset = build_dataset(DataConfig(format="jpegbytes", root=str(path)), "train")
    with pytest.warns(CorruptImageWarning, match=r"corrupt\.npz:train_jpeg\[1\].*skipped so far"):
        img, label = dataset[1]
    assert label == 2 and img.size == (16, 16)  # the next readable image


@pytest.mark.parametrize(
    ("arrays", "message"),
    [
        ({"images": _images(2)}, "expected keys train_images\\+labels or train_jpeg\\+offsets\\+labels"),
        ({"train_images": _images(2)[..., 0], "train_labels": np.arange(2)}, "must be N x H x W x 3 uint8"),
        ({"train_images": _images(2), "train_labels": np.arange(3)}, "2 images but there are 3 labels"),
        ({"train_images": _images(2), "train_labels": np.array([0.0, 1.0])}, "1-D integer array"),
        ({"train_images": _images(2), "train_labels": np.array([0, 2]), "class_names": np.array(["a"])}, "class_names"),
        ({"train_jpeg": np.zeros(10, np.uint8), "train_offsets": np.array([0, 4, 20]), "train_labels": np.arange(2)},
         "must rise from 0 to the buffer length"),
    ],
)
def test_wrong_layouts_name_the_file_and_key(tmp_path, arrays, message) -> None:
    path = tmp_path / "bad.npz"
    np.savez(path, **arrays)
    with pytest.raises(EdgeSSLError, match=message) as info:
        NpzImages(path, "train")
    assert str(path) in str(info.value)


def test_missing_and_unreadable_files(tmp_path) -> None:
    with pytest.raises(EdgeSSLError, match="missing.npz' is not a file"):
        NpzImages(tmp_path / "missing.npz", "train")
    (tmp_path / "text.npz").write_text("not an archive")
    with pytest.raises(EdgeSSLError, match="text.npz' is not a readable .npz file"):
        NpzImages(tmp_path / "text.npz", "train")
    np.save(tmp_path / "single.npy", _images(2))
    with pytest.raises(EdgeSSLError, match="single.npy' is not a readable .npz file"):
        NpzImages(tmp_path / "single.npy", "train")


def test_dataset_pickles_for_workers(jpeg_npz) -> None:
    import pickle

    dataset = build_dataset(DataConfig(format="npz", root=str(jpeg_npz)), "train")
    copy = pickle.loads(pickle.dumps(dataset))
    assert np.array_equal(np.asarray(copy[3][0]), np.asarray(dataset[3][0]))


@pytest.mark.parametrize(
    ("name", "layout", "sizes", "n_classes", "side"),
    [
        ("cifar10_32px_train1k_test200.npz", "images", (1000, 200), 10, 32),
        ("cifar10_full_jpegbytes.npz", "jpeg", (50000, 10000), 10, 32),
        ("tinyimagenet200_jpegbytes_train100pc_val50pc.npz", "jpeg", (20000, 10000), 200, 64),
    ],
)
def test_shared_files_load(shared_datasets, name, layout, sizes, n_classes, side) -> None:
    path = shared_datasets / name
    if not path.exists():
        pytest.skip(f"{path} not found")
    for split, size in zip(("train", "test"), sizes):
        dataset = NpzImages(path, split)
        assert (dataset.layout, len(dataset), len(dataset.classes)) == (layout, size, n_classes)
        with warnings.catch_warnings():
            warnings.simplefilter("error")
            img, label = dataset[size - 1]
        assert img.size == (side, side) and 0 <= label < n_classes
