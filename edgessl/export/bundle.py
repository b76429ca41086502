"""`edgessl bundle`: the folder a user copies to a board to check an artifact there without torch.

It holds the artifact, a preprocessing spec, N class-balanced test images of the recipe's data as uint8 with
labels, a kNN bank (PyTorch fp32 embeddings of M class-balanced training images, with labels), the PyTorch fp32
embeddings of the N images, and a manifest with every file's sha256 (layout: `edgessl.export.bundle_format`).
Images are stored after the eval transform's resize and crop, before scaling and normalization, so the board
feeds exactly what `edgessl check` feeds (`bundle_format.normalize`). The folder is written into a staging
folder beside `out` and renamed into place at the end; an existing non-empty `out` is refused.
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from edgessl import __version__
from edgessl.errors import EdgeSSLError
from edgessl.export import target_of
from edgessl.export.bundle_format import EMBEDDING_DTYPE, FORMAT_VERSION, SPEC, normalize, write_manifest

if TYPE_CHECKING:
    from edgessl.config import Config
    from edgessl.models.encoder_loading import LoadedEncoder

@dataclass
class Bundle:
    folder: Path
    size_mb: float
    samples: int
    bank: int


def _uint8_split(cfg: Config, split: str, count: int) -> tuple[np.ndarray, np.ndarray]:
    """`count` class-balanced labelled images of `split` (all when fewer), resized and cropped by the eval
    transform, as uint8 (N, S, S, 3), and their labels."""
    from torchvision.transforms import v2

    from edgessl.data import balanced_subset, build_dataset
    from edgessl.data.transforms import EvalResize

    size = cfg.data.image_size
    dataset = build_dataset(cfg.data, split, v2.Compose([EvalResize(size), v2.ToImage()]), labelled=True)
    if len(dataset) == 0:
        raise EdgeSSLError(f"the {split} split of data.root '{cfg.data.root}' has no labelled images; a bundle "
                           "needs them (--data PATH)")
    picked = balanced_subset(dataset.targets, count) if count < len(dataset) else np.arange(len(dataset))
    items = [dataset[int(i)] for i in picked]
    images = np.stack([np.asarray(img).transpose(1, 2, 0) for img, _ in items]).astype(np.uint8)
    return np.ascontiguousarray(images), np.asarray([y for _, y in items], dtype=np.int64)


def _embed(enc: LoadedEncoder, images: np.ndarray, batch: int = 256) -> np.ndarray:
    """PyTorch fp32 embeddings of uint8 images, fed the same normalized tensors the board will feed."""
    from edgessl.export.check import torch_runner

    run, mean, std = torch_runner(enc.model), enc.info["mean"], enc.info["std"]
    return np.concatenate([run(normalize(images[i:i + batch], mean, std)) for i in range(0, len(images), batch)])


def _spec(enc: LoadedEncoder, artifact: Path, meta: dict[str, Any], files: list[Path], profile: Any,
          pytorch_mb: float) -> dict[str, Any]:
    cfg = enc.cfg
    return {"format_version": FORMAT_VERSION, "edgessl": __version__, "artifact": artifact.name,
            "artifact_files": [f.name for f in files], "target": target_of(artifact).name,
            "precision": meta.get("precision", "?"), "layout": meta.get("layout", target_of(artifact).layout),
            "input_shape": meta.get("input_shape"), "image_size": cfg.data.image_size,
            "mean": list(enc.info["mean"]), "std": list(enc.info["std"]),
            "input_quantization": meta.get("input_quantization"), "output_quantization": meta.get("output_quantization"),
            "images": "uint8 (N, S, S, 3) RGB after the eval resize/crop; feed (x / 255 - mean) / std",
            "embedding_dtype": EMBEDDING_DTYPE, "arch": enc.info["arch"], "checkpoint": str(enc.path.resolve()),
            "data": {k: getattr(cfg.data, k) for k in ("format", "root", "train_samples")},
            "knn": {"k": cfg.knn.k, "temperature": cfg.knn.temperature},
            "tolerance": profile.tolerance, "warmup": profile.warmup, "runs": profile.runs,
            "pytorch_size_mb": round(pytorch_mb, 4)}


def _check_out(out: Path) -> None:
    if out.exists() and (not out.is_dir() or any(out.iterdir())):
        raise EdgeSSLError(f"--out '{out}' already exists and is not empty; pass a new folder (nothing is "
                           "overwritten)")


def write_bundle(artifact: str | Path, out: str | Path, samples: int, bank: int,
                 checkpoint: str | Path | None = None, data: str | None = None, overrides: Sequence[str] = (),
                 profiles: str | Path | None = None) -> Bundle:
    """Write the bundle of `artifact` to the folder `out` (see the module docstring); returns it with its size.

    The checkpoint comes from the artifact's metadata unless given; `data` (a .npz or folder) and `overrides`
    change the recipe's data as in `edgessl check`."""
    from edgessl.export.check_artifact import artifact_encoder

    path, out = Path(artifact), Path(out)
    if not path.is_file():
        raise EdgeSSLError(f"artifact '{path}' not found")
    if samples < 1 or bank < 1:
        raise EdgeSSLError(f"--samples and --bank must be >= 1; got {samples} and {bank}")
    _check_out(out)
    target, meta, enc = artifact_encoder(path, checkpoint, overrides, data)
    if enc.cfg.data.image_size != meta.get("image_size", enc.cfg.data.image_size):
        raise EdgeSSLError(f"'{path}' takes {meta['image_size']} px but data.image_size is "
                           f"{enc.cfg.data.image_size}; drop the data.image_size override")
    profile = target.profile(enc.info["arch"], profiles)
    images, labels = _uint8_split(enc.cfg, "test", samples)
    bank_images, bank_labels = _uint8_split(enc.cfg, "train", bank)
    reference = _embed(enc, images).astype(EMBEDDING_DTYPE)
    bank_feats = _embed(enc, bank_images).astype(EMBEDDING_DTYPE)
    out.parent.mkdir(parents=True, exist_ok=True)
    stage = Path(tempfile.mkdtemp(prefix=".edgessl-bundle-", dir=out.parent))
    try:
        stage.chmod(0o755)  # mkdtemp's 0700 would hide the bundle from other users of the folder
        files = [f for f in target.files(path) if f.is_file()]
        for f in files:
            shutil.copyfile(f, stage / f.name)
        for name, array in (("images", images), ("labels", labels), ("reference", reference), ("bank", bank_feats),
                            ("bank_labels", bank_labels)):
            np.save(stage / f"{name}.npy", array, allow_pickle=False)
        weights_mb = sum(t.numel() * t.element_size() for t in enc.model.state_dict().values()) / 1e6
        (stage / SPEC).write_text(json.dumps(_spec(enc, path, meta, files, profile, weights_mb), indent=2) + "\n")
        write_manifest(stage)
        _check_out(out)
        if out.exists():
            out.rmdir()  # empty (checked just above)
        os.replace(stage, out)
    except BaseException:  # an error or Ctrl-C leaves no half-written bundle
        shutil.rmtree(stage, ignore_errors=True)
        raise
    size = sum(f.stat().st_size for f in out.iterdir()) / 1e6
    return Bundle(out, size, len(images), len(bank_feats))
