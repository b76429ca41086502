"""The on-disk contract of a device bundle, shared by its writer (`edgessl bundle`) and its reader
(`edgessl-device check`); numpy and the standard library only, so the board needs nothing else.

A bundle is one folder:
  <artifact> (+ its sidecar / .bin)  the exported encoder, byte for byte
  spec.json        preprocessing (image size, mean/std, layout, int8 input/output quantization), kNN k and
                   temperature, tolerance, latency warm-up/runs, what the arrays hold, where they came from
  images.npy       N test images, uint8 (N, S, S, 3) RGB, already resized/cropped to the encoder's size
  labels.npy       their labels, int64 (N,)
  reference.npy    PyTorch fp32 embeddings of those images, stored float16 (N, D)
  bank.npy         PyTorch fp32 embeddings of M training images, stored float16 (M, D): the kNN bank
  bank_labels.npy  their labels, int64 (M,)
  manifest.json    format version and the sha256 and size of every file above
Embeddings are stored as float16 to keep the bundle small (5,000 x 1,280 floats: 12.8 MB instead of 25.6);
the rounding changes a cosine by < 1e-5 and the reference kNN is computed from the stored values.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np

from edgessl.errors import EdgeSSLError
from edgessl.file_hash import sha256_of

FORMAT_VERSION = 1
MANIFEST = "manifest.json"
SPEC = "spec.json"
ARRAYS = ("images", "labels", "reference", "bank", "bank_labels")  # each stored as <name>.npy
EMBEDDING_DTYPE = "float16"


def normalize(images: np.ndarray, mean: list[float], std: list[float]) -> np.ndarray:
    """uint8 (N, S, S, 3) images -> the float32 NCHW tensor every artifact takes: pixels / 255, then
    (x - mean) / std per channel (`edgessl.data.eval_transform` after its resize and crop)."""
    x = images.astype(np.float32) / 255.0
    x = (x - np.asarray(mean, np.float32)) / np.asarray(std, np.float32)
    return np.ascontiguousarray(x.transpose(0, 3, 1, 2), dtype=np.float32)


def write_manifest(folder: Path) -> dict[str, Any]:
    """Hash every file in `folder` (but the manifest) into `manifest.json`; returns the manifest."""
    files = {f.name: {"sha256": sha256_of(f), "bytes": f.stat().st_size}
             for f in sorted(folder.iterdir()) if f.is_file() and f.name != MANIFEST}
    manifest = {"format_version": FORMAT_VERSION, "files": files}
    (folder / MANIFEST).write_text(json.dumps(manifest, indent=2) + "\n")
    return manifest


def _json(path: Path) -> dict[str, Any]:
    try:
        value = json.loads(path.read_text())
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise EdgeSSLError(f"'{path}' is not readable JSON ({type(exc).__name__}); copy the bundle again") from None
    if not isinstance(value, dict):
        raise EdgeSSLError(f"'{path}' is not a JSON object; copy the bundle again")
    return value


def verify(folder: str | Path) -> dict[str, Any]:
    """Check the manifest (format version, every file present with its sha256); return the spec."""
    folder = Path(folder)
    if not (folder / MANIFEST).is_file():
        raise EdgeSSLError(f"'{folder}' is not an edgessl bundle (no {MANIFEST}); make one with `edgessl bundle`")
    manifest = _json(folder / MANIFEST)
    version = manifest.get("format_version")
    if not isinstance(version, int) or version < 1:
        raise EdgeSSLError(f"'{folder / MANIFEST}': format_version {version!r} is not a bundle version; "
                           "re-create the bundle with `edgessl bundle`")
    if version > FORMAT_VERSION:
        raise EdgeSSLError(f"'{folder}' is bundle format {version}, newer than this edgessl reads "
                           f"({FORMAT_VERSION}); upgrade edgessl on this device to the version that wrote it")
    files = manifest.get("files")
    if not isinstance(files, dict) or SPEC not in files:
        raise EdgeSSLError(f"'{folder / MANIFEST}' lists no {SPEC}; re-create the bundle with `edgessl bundle`")
    for name, entry in files.items():
        path = folder / name
        if not path.is_file():
            raise EdgeSSLError(f"bundle file '{path}' is missing; copy the whole bundle folder again")
        if not isinstance(entry, dict) or sha256_of(path) != entry.get("sha256"):
            raise EdgeSSLError(f"bundle file '{path}' does not match its sha256 in {MANIFEST}: it changed or was "
                               "cut short in transit; copy the bundle again")
    missing = [f"{a}.npy" for a in ARRAYS if f"{a}.npy" not in files]
    spec = _json(folder / SPEC)
    if missing or spec.get("artifact") not in files:
        raise EdgeSSLError(f"'{folder / MANIFEST}' lacks {', '.join(missing) or spec.get('artifact')}; "
                           "re-create the bundle with `edgessl bundle`")
    return spec


def load_arrays(folder: str | Path) -> dict[str, np.ndarray]:
    """The bundle's arrays (no pickles), embeddings as float32."""
    arrays = {name: np.load(Path(folder) / f"{name}.npy", allow_pickle=False) for name in ARRAYS}
    for name in ("reference", "bank"):
        arrays[name] = arrays[name].astype(np.float32)
    return arrays
