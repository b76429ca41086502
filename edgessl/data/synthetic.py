"""A built-in 10-class image dataset drawn procedurally, so a recipe runs with no download.

Each image is one shape or pattern (the class) at a random position, scale, rotation and aspect,
in a random colour over a random two-colour gradient background, with a few distractor specks and
pixel noise. Colour and layout carry no class information, so a model has to learn shape and texture:
a random-init CNN's kNN accuracy is far from 100% and self-supervised training improves it.

Image `i` of a split is a pure function of (seed, split, i): reproducible, generated lazily per
index (no memory), and train/test come from independent random streams. Labels are `i % 10`,
so every split is class-balanced.
"""

from __future__ import annotations

import functools
from typing import Callable

import numpy as np
from PIL import Image
from torch.utils.data import Dataset

from edgessl.errors import EdgeSSLError

CLASS_NAMES = ("circle", "square", "triangle", "star", "cross", "ring", "stripes", "checker", "dots", "blob")
_SPLIT_IDS = {"train": 0, "test": 1}
_SUPERSAMPLE = 2  # render at 2x and average: anti-aliased edges


def _patch(u: np.ndarray, v: np.ndarray) -> np.ndarray:
    """The square region that the texture classes fill."""
    return (np.abs(u) < 0.85) & (np.abs(v) < 0.85)


def _star(u: np.ndarray, v: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    points = int(rng.integers(5, 7))
    phase = np.abs(((np.arctan2(v, u) * points / (2 * np.pi)) % 1.0) * 2 - 1)  # 1 at a tip, 0 between tips
    return np.hypot(u, v) < 0.4 + 0.6 * phase**1.5


def _blob(u: np.ndarray, v: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    centres = rng.uniform(-0.45, 0.45, size=(3, 2))
    field = sum(np.exp(-((u - cx) ** 2 + (v - cy) ** 2) / 0.12) for cx, cy in centres)
    return field > 0.6


def _stripes(u: np.ndarray, v: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    return _patch(u, v) & (np.sin(u * rng.uniform(7, 11)) > 0)


def _checker(u: np.ndarray, v: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    k = rng.uniform(5, 8)
    return _patch(u, v) & (np.sin(u * k) * np.sin(v * k) > 0)


def _dots(u: np.ndarray, v: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    k = rng.uniform(1.6, 2.2)
    return _patch(u, v) & (((u * k) % 1 - 0.5) ** 2 + ((v * k) % 1 - 0.5) ** 2 < 0.07)


_SQRT3 = np.sqrt(3.0)
# Class masks over shape-local coordinates (u, v) in about [-1, 1]; index = label.
_MASKS: tuple[Callable[[np.ndarray, np.ndarray, np.random.Generator], np.ndarray], ...] = (
    lambda u, v, rng: u * u + v * v < 0.8,
    lambda u, v, rng: (np.abs(u) < 0.75) & (np.abs(v) < 0.75),
    lambda u, v, rng: (v > -0.5) & (_SQRT3 * u - v > -1) & (-_SQRT3 * u - v > -1),
    _star,
    lambda u, v, rng: ((np.abs(u) < 0.28) & (np.abs(v) < 0.95)) | ((np.abs(v) < 0.28) & (np.abs(u) < 0.95)),
    lambda u, v, rng: np.abs(np.hypot(u, v) - 0.72) < 0.2,
    _stripes,
    _checker,
    _dots,
    _blob,
)


def _colour_pair(rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """A random foreground colour and a background colour that differs from it clearly."""
    fg = rng.uniform(0, 1, 3)
    while True:
        bg = rng.uniform(0, 1, 3)
        if np.abs(fg - bg).sum() > 0.6:
            return fg, bg


@functools.lru_cache(maxsize=8)
def _grid(n: int) -> tuple[np.ndarray, np.ndarray]:
    """Pixel-centre coordinates of an n x n image in [-1, 1], as a row and a column (float32, read-only)."""
    axis = (np.arange(n, dtype=np.float32) + 0.5) / n * 2 - 1
    axis.flags.writeable = False
    return axis[None, :], axis[:, None]


def render(label: int, rng: np.random.Generator, size: int = 32) -> np.ndarray:
    """Draw one `size` x `size` x 3 uint8 image of class `label` using randomness from `rng`.

    Only the shape mask is computed at 2x (its mean is the anti-aliased coverage); the rest is at 1x.
    """
    fg, bg = _colour_pair(rng)
    bg2 = np.clip(bg + rng.uniform(-0.3, 0.3, 3), 0, 1)
    angle = rng.uniform(0, 2 * np.pi)
    x, y = _grid(size)
    ramp = (np.cos(angle) * x + np.sin(angle) * y + 1) / 2  # background gradient direction
    img = bg.astype(np.float32) + (bg2 - bg).astype(np.float32) * ramp[..., None]
    for _ in range(rng.integers(1, 4)):  # distractor specks in other colours
        sx, sy = rng.uniform(-0.9, 0.9, 2)
        speck = (x - sx) ** 2 + (y - sy) ** 2 < rng.uniform(0.003, 0.012)
        img[speck] = rng.uniform(0, 1, 3)

    cx, cy = rng.uniform(-0.35, 0.35, 2)
    scale = rng.uniform(0.35, 0.65)
    aspect = np.exp(rng.uniform(-0.2, 0.2))
    theta = rng.uniform(0, 2 * np.pi)
    cos, sin = np.float32(np.cos(theta)), np.float32(np.sin(theta))
    x, y = _grid(size * _SUPERSAMPLE)
    x, y = x - np.float32(cx), y - np.float32(cy)
    u = (x * cos + y * sin) / np.float32(scale * aspect)
    v = (y * cos - x * sin) / np.float32(scale / aspect)
    mask = _MASKS[label](u, v, rng)
    alpha = mask.reshape(size, _SUPERSAMPLE, size, _SUPERSAMPLE).mean(axis=(1, 3), dtype=np.float32)[..., None]
    img += alpha * (fg * rng.uniform(0.8, 1.2, 3) - img)
    img += rng.standard_normal(img.shape, dtype=np.float32) * np.float32(rng.uniform(0, 0.06))
    return (np.clip(img, 0, 1) * 255 + 0.5).astype(np.uint8)


class SyntheticShapes(Dataset):
    """`length` procedurally drawn images of `size` px for `split` ("train" or "test"); items are
    `(PIL RGB image, label)`. `classes` (torchvision's name) and `class_names` are the 10 class names."""

    class_names = classes = CLASS_NAMES

    def __init__(self, split: str, length: int, size: int = 32, seed: int = 0) -> None:
        if split not in _SPLIT_IDS:
            raise EdgeSSLError(f"synthetic dataset: unknown split '{split}'; use 'train' or 'test'")
        self.split, self.length, self.size, self.seed = split, length, size, seed
        self.targets = np.arange(length) % len(CLASS_NAMES)

    def __len__(self) -> int:
        return self.length

    def __getitem__(self, index: int) -> tuple[object, int]:
        if not 0 <= index < self.length:
            raise IndexError(f"index {index} out of range for {self.length} images")
        label = int(self.targets[index])
        rng = np.random.default_rng((self.seed, _SPLIT_IDS[self.split], index))
        return Image.fromarray(render(label, rng, self.size)), label
