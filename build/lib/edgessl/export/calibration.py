"""int8 calibration images: a seeded random subset of the recipe's TRAINING split with the EVAL transform, so
the activation ranges are those of the deployment input (normalized float NCHW, see `edgessl.export.base`)."""

from __future__ import annotations

import warnings

import numpy as np

from edgessl.config import DataConfig
from edgessl.errors import EdgeSSLError

RECOMMENDED = 300  # NNCF's and ORT's usual calibration size; fewer gives noisier activation ranges


class CalibrationWarning(UserWarning):
    """Fewer calibration images than recommended."""


def calibration_images(data: DataConfig, image_size: int, count: int, seed: int = 0) -> np.ndarray:
    """`count` training images (all of them when the split is smaller) as float32 (N, 3, S, S); warns under 300."""
    from edgessl.data import build_dataset, eval_transform

    if count < 1:
        raise EdgeSSLError(f"--calib must be >= 1 image; got {count}")
    dataset = build_dataset(data, "train", eval_transform(image_size))
    if len(dataset) == 0:
        raise EdgeSSLError(f"the training split of data.root '{data.root}' is empty; int8 calibration needs images")
    picked = np.sort(np.random.default_rng(seed).permutation(len(dataset))[:count])
    images = np.stack([dataset[int(i)][0].numpy() for i in picked]).astype(np.float32)
    if len(images) < RECOMMENDED:
        warnings.warn(f"int8 calibration uses only {len(images)} images (recommended >= {RECOMMENDED}); activation "
                      "ranges may be off -- raise --calib or use more training data", CalibrationWarning, stacklevel=2)
    return images
