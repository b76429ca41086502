"""Image folders and the torchvision datasets (CIFAR-10/100, STL-10) in torchvision's on-disk layout.

Every loader returns items `(PIL RGB image, label)` and has `targets` (int labels) and `classes` (names),
and turns torchvision's missing-file errors into one-line `EdgeSSLError`s.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image
from torchvision import datasets
from torchvision.datasets.folder import find_classes

from edgessl.errors import EdgeSSLError


WIDE_MODES = ("I;16", "I;16B", "I;16L", "I;16N", "I")  # 16-bit grey PNGs open as I;16 (or I in older Pillow)


def load_rgb(path: str) -> Image.Image:
    """An image file as 8-bit RGB. 16-bit greyscale (PNG `I;16`) is scaled to 8 bits (/257): PIL's own
    `convert("RGB")` clips it, turning nearly every pixel white."""
    with open(path, "rb") as fh:
        img = Image.open(fh)
        img.load()
    if img.mode in WIDE_MODES:
        grey = np.clip(np.asarray(img, dtype=np.float64) / 257.0, 0, 255).round().astype(np.uint8)
        return Image.fromarray(grey).convert("RGB")
    return img.convert("RGB")


class _ClassFolder(datasets.ImageFolder):
    """`ImageFolder` over a fixed class list, so the test split uses the training split's label indices."""

    def __init__(self, root: Path, classes: list[str], allow_empty: bool) -> None:
        self._classes = classes
        super().__init__(str(root), loader=load_rgb, allow_empty=allow_empty)

    def find_classes(self, directory: str) -> tuple[list[str], dict[str, int]]:
        return self._classes, {name: i for i, name in enumerate(self._classes)}

    def describe(self, index: int) -> str:
        """The file behind item `index`, for warnings."""
        return self.samples[index][0]


def image_folder(root: str | Path, split: str) -> datasets.ImageFolder:
    """`root/train/<class>/*` with `root/val/<class>/*` or `root/test/<class>/*` as the test split;
    or class folders directly in `root`, which are then the training split (and there is no test split).

    Test-split classes must be training classes and get the training label indices (a class missing
    from the test split is allowed). Only files with image extensions are listed.
    """
    root = Path(root)
    if not root.is_dir():
        raise EdgeSSLError(f"data.root '{root}' is not a folder; point it at a folder of class folders of images")
    train_root = root / "train" if (root / "train").is_dir() else root
    try:
        classes, _ = find_classes(str(train_root))
    except FileNotFoundError:
        raise EdgeSSLError(
            f"data.root '{root}' has no class folders; lay images out as {root}/train/<class>/*.jpg "
            f"(and {root}/val/<class>/*.jpg for the test split)"
        ) from None
    if split == "train":
        folder = train_root
    else:
        candidates = [root / "val", root / "test"] if train_root != root else []
        folder = next((path for path in candidates if path.is_dir()), None)
        if folder is None:
            raise EdgeSSLError(
                f"data.root '{root}' has no test split; add {root}/val/<class>/* next to {root}/train/<class>/*"
            )
        extra = sorted({path.name for path in folder.iterdir() if path.is_dir()} - set(classes))
        if extra:
            raise EdgeSSLError(
                f"'{folder}' has classes not in '{train_root}': {', '.join(extra[:5])}; use the same class folders"
            )
    try:
        dataset = _ClassFolder(folder, classes, allow_empty=split != "train")
    except FileNotFoundError as exc:
        reason = str(exc).splitlines()[0]
        raise EdgeSSLError(f"'{folder}': {reason}; add images (.jpg, .png, ...) to every class folder") from None
    if not len(dataset):
        raise EdgeSSLError(f"'{folder}' has no images; add images (.jpg, .png, ...) under {folder}/<class>/")
    return dataset


def _torchvision(cls: type, root: str | Path, download: bool, **kwargs: object) -> datasets.VisionDataset:
    """Instantiate a torchvision dataset; `root` may be the folder holding `cls.base_folder` or that folder itself."""
    root = Path(root)
    if root.name == cls.base_folder:
        root = root.parent
    try:
        return cls(str(root), download=download, **kwargs)
    except RuntimeError:
        raise EdgeSSLError(
            f"no {cls.__name__} files (or corrupted ones) in '{root / cls.base_folder}'; "
            "set data.download=true or fix data.root to the folder that holds it"
        ) from None
    except OSError as exc:  # a failed download (URLError) or an unreadable file
        raise EdgeSSLError(
            f"{cls.__name__} in '{root}': {exc}; check data.root (and the network if data.download=true)"
        ) from None


def cifar(root: str | Path, split: str, download: bool, n_classes: int = 10) -> datasets.VisionDataset:
    """CIFAR-10 or CIFAR-100 (`n_classes`) from `root/cifar-10-batches-py` or `root/cifar-100-python`."""
    cls = datasets.CIFAR10 if n_classes == 10 else datasets.CIFAR100
    return _torchvision(cls, root, download, train=split == "train")


def stl10(root: str | Path, split: str, download: bool, labelled: bool) -> datasets.STL10:
    """STL-10 from `root/stl10_binary` (96 px).

    The training split is "train+unlabeled" (5k labelled + 100k unlabelled images, label -1) for
    self-supervised training, or the 5k labelled "train" images when `labelled` (kNN / linear evaluation).
    The test split is the 8k labelled test images.
    """
    name = "test" if split == "test" else ("train" if labelled else "train+unlabeled")
    dataset = _torchvision(datasets.STL10, root, download, split=name)
    dataset.targets = np.asarray(dataset.labels)
    if not hasattr(dataset, "classes"):  # torchvision sets it only when class_names.txt exists
        dataset.classes = [str(i) for i in range(10)]
    return dataset
