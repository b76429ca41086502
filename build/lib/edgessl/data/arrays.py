"""Images stored in one `.npz` file, in either of the two layouts of `shared/datasets/README.md`.

- decoded arrays: `{split}_images` (N x H x W x 3 uint8) and `{split}_labels`
- JPEG bytes: `{split}_jpeg` (one flat uint8 buffer), `{split}_offsets` (N+1 int64; image i is
  `buf[off[i]:off[i+1]]`) and `{split}_labels`, decoded lazily in `__getitem__`

Optional `class_names` names the labels. The layout is detected from the keys. The file's test split may be
called `test` or `val`. The arrays are held in memory as plain numpy arrays: DataLoader workers share them
copy-on-write under fork, and they pickle as one buffer copy under spawn.
"""

from __future__ import annotations

import io
import zipfile
import zlib
from pathlib import Path

import numpy as np
from PIL import Image
from torch.utils.data import Dataset

from edgessl.errors import EdgeSSLError

_PREFIXES = {"train": ("train",), "test": ("test", "val")}
_LAYOUTS = {"images": ("images", "labels"), "jpeg": ("jpeg", "offsets", "labels")}
_UNREADABLE = (OSError, ValueError, EOFError, zipfile.BadZipFile, zlib.error)


def _read(path: Path, split: str) -> tuple[str, str, dict[str, np.ndarray]]:
    """(key prefix, layout, arrays by key) of `split` in the npz at `path`, with `class_names` when present."""
    if not path.is_file():
        raise EdgeSSLError(f"data.root '{path}' is not a file; point data.root at a .npz file")
    try:
        npz = np.load(path, allow_pickle=False)
        if not isinstance(npz, np.lib.npyio.NpzFile):
            raise ValueError("it holds a single array, not named arrays")
        with npz:
            prefix, layout = _find_layout(list(npz.files), split, path)
            keys = [f"{prefix}_{part}" for part in _LAYOUTS[layout]] + [k for k in ("class_names",) if k in npz.files]
            return prefix, layout, {key: npz[key] for key in keys}
    except _UNREADABLE as exc:
        raise EdgeSSLError(
            f"data.root '{path}' is not a readable .npz file ({exc}); write it with numpy.savez"
        ) from None


def _find_layout(files: list[str], split: str, path: Path) -> tuple[str, str]:
    """The (key prefix, layout) of `split` in an npz whose keys are `files`."""
    for prefix in _PREFIXES[split]:
        for layout, parts in _LAYOUTS.items():
            if all(f"{prefix}_{part}" in files for part in parts):
                return prefix, layout
    wanted = " or ".join(f"{_PREFIXES[split][0]}_{'+'.join(parts)}" for parts in _LAYOUTS.values())
    raise EdgeSSLError(
        f"{path}: no '{split}' split; expected keys {wanted} (found {', '.join(sorted(files)) or 'none'}); "
        "see shared/datasets/README.md for the npz layouts"
    )


class NpzImages(Dataset):
    """One split of an image `.npz`; items are `(PIL RGB image, label)`.

    A JPEG that fails to decode raises OSError; `build_dataset` wraps this dataset to skip such images.
    """

    def __init__(self, path: str | Path, split: str) -> None:
        self.path, self.split = Path(path), split
        self.prefix, self.layout, arrays = _read(self.path, split)
        self.key = f"{self.prefix}_{self.layout}"
        self.targets = arrays[f"{self.prefix}_labels"]
        self._check_labels()
        if self.layout == "images":
            self.images = arrays[self.key]
            self._check_images()
        else:
            self.buffer, self.offsets = arrays[self.key], arrays[f"{self.prefix}_offsets"]
            self._check_jpeg()
        n_classes = int(self.targets.max()) + 1
        names = arrays.get("class_names")
        self.classes = [str(c) for c in names] if names is not None else [str(i) for i in range(n_classes)]
        if len(self.classes) < n_classes:
            self._bad(f"class_names has {len(self.classes)} names but labels go up to {n_classes - 1}")

    def _bad(self, what: str) -> None:
        raise EdgeSSLError(f"{self.path}: {what}; see shared/datasets/README.md for the npz layouts")

    def _check_labels(self) -> None:
        labels, key = self.targets, f"{self.prefix}_labels"
        if labels.ndim != 1 or labels.dtype.kind not in "iu":
            self._bad(f"'{key}' must be a 1-D integer array; got {labels.dtype} {labels.shape}")
        if len(labels) == 0:
            self._bad(f"'{key}' is empty; the {self.split} split has no images")
        if labels.min() < 0:
            self._bad(f"'{key}' has negative labels; labels must be in [0, n_classes)")

    def _check_images(self) -> None:
        images = self.images
        if images.dtype != np.uint8 or images.ndim != 4 or images.shape[-1] != 3:
            self._bad(f"'{self.key}' must be N x H x W x 3 uint8; got {images.dtype} {images.shape}")
        if len(images) != len(self.targets):
            self._bad(f"'{self.key}' has {len(images)} images but there are {len(self.targets)} labels")

    def _check_jpeg(self) -> None:
        buf, off, key, off_key = self.buffer, self.offsets, self.key, f"{self.prefix}_offsets"
        if buf.dtype != np.uint8 or buf.ndim != 1:
            self._bad(f"'{key}' must be one flat uint8 buffer; got {buf.dtype} {buf.shape}")
        if off.ndim != 1 or off.dtype.kind not in "iu" or len(off) != len(self.targets) + 1:
            self._bad(f"'{off_key}' must be N+1 = {len(self.targets) + 1} integers; got {off.dtype} {off.shape}")
        if off[0] != 0 or off[-1] != len(buf) or np.any(np.diff(off) < 0):
            self._bad(f"'{off_key}' must rise from 0 to the buffer length {len(buf)}")

    def __len__(self) -> int:
        return len(self.targets)

    def describe(self, index: int) -> str:
        """Where image `index` lives, for warnings."""
        return f"{self.path}:{self.key}[{index}]"

    def __getitem__(self, index: int) -> tuple[object, int]:
        if self.layout == "images":
            img = Image.fromarray(self.images[index])
        else:
            data = self.buffer[self.offsets[index] : self.offsets[index + 1]].tobytes()
            img = Image.open(io.BytesIO(data)).convert("RGB")
        return img, int(self.targets[index])
