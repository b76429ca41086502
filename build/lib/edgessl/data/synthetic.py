"""A built-in 10-class image dataset drawn procedurally, so a recipe runs with no download.

Each class is one fixed scene: five shapes and patterns in fixed colours over a two-colour gradient, its
layout drawn once from the class index (the same in every split). An image is a random view of its class's
scene, as if the scene were photographed again: a crop of 30-100 % of it (aspect 3:4-4:3) with a random
flip, each shape moved, resized and turned a little and its colour shifted, then brightness and contrast
changed, sometimes grayscale, and pixel noise. Classes differ in content, and the variation within a class
is viewpoint and lighting -- what self-supervised augmentations model -- so a random-init CNN's kNN is
well below 100 % and ReSSL raises it within a few hundred steps (README: `make demo`).

Image `i` of a split is a pure function of (seed, split, i): reproducible, generated lazily per
index (no memory), and train/test come from independent random streams. Labels are `i % 10`,
so every split is class-balanced.
"""

from __future__ import annotations

import dataclasses
import functools
from typing import Callable

import numpy as np
from PIL import Image
from torch.utils.data import Dataset

from edgessl.errors import EdgeSSLError

CLASS_NAMES = tuple(f"scene{i}" for i in range(10))
_SPLIT_IDS = {"train": 0, "test": 1}
_SUPERSAMPLE = 2  # render at 2x and average: anti-aliased edges


def _patch(u: np.ndarray, v: np.ndarray) -> np.ndarray:
    """The square region that the texture shapes fill."""
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
# Shape masks over shape-local coordinates (u, v) in about [-1, 1]; a scene's shapes index into this.
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


_SCENE_SEED = 1234  # fixes the ten scene layouts, shared by every split and dataset seed
_SHAPES_PER_SCENE = 5


@dataclasses.dataclass(frozen=True)
class _Shape:
    kind: int  # index into _MASKS
    centre: np.ndarray  # (x, y) in scene coordinates [-1, 1]
    scale: float
    angle: float
    colour: np.ndarray  # RGB in [0, 1]


@dataclasses.dataclass(frozen=True)
class _Scene:
    ground: np.ndarray  # RGB at one end of the background gradient
    ground2: np.ndarray  # RGB at the other end
    ramp_angle: float
    shapes: tuple[_Shape, ...]


@functools.lru_cache(maxsize=len(CLASS_NAMES))
def _scene(label: int) -> _Scene:
    """The fixed scene of class `label`."""
    rng = np.random.default_rng((_SCENE_SEED, label))
    ground = rng.uniform(0, 1, 3)
    ground2 = np.clip(ground + rng.uniform(-0.4, 0.4, 3), 0, 1)
    ramp_angle = rng.uniform(0, 2 * np.pi)
    shapes = tuple(_Shape(int(rng.integers(len(_MASKS))), rng.uniform(-0.6, 0.6, 2), rng.uniform(0.25, 0.45),
                          rng.uniform(0, 2 * np.pi), rng.uniform(0, 1, 3)) for _ in range(_SHAPES_PER_SCENE))
    return _Scene(ground, ground2, ramp_angle, shapes)


@functools.lru_cache(maxsize=8)
def _grid(n: int) -> tuple[np.ndarray, np.ndarray]:
    """Pixel-centre coordinates of an n x n image in [-1, 1], as a row and a column (float32, read-only)."""
    axis = (np.arange(n, dtype=np.float32) + 0.5) / n * 2 - 1
    axis.flags.writeable = False
    return axis[None, :], axis[:, None]


def _view_grid(size: int, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """Scene coordinates of the supersampled pixels of a random crop (30-100 % of the area, aspect
    3:4-4:3, flipped half the time), as two (size * _SUPERSAMPLE)^2 arrays."""
    area, aspect = rng.uniform(0.3, 1.0), np.exp(rng.uniform(-0.25, 0.25))
    half_w, half_h = min(np.sqrt(area * aspect), 1.0), min(np.sqrt(area / aspect), 1.0)
    ox, oy = rng.uniform(half_w - 1, 1 - half_w), rng.uniform(half_h - 1, 1 - half_h)
    flip = -1.0 if rng.random() < 0.5 else 1.0
    x, y = _grid(size * _SUPERSAMPLE)
    return np.broadcast_arrays(np.float32(ox) + np.float32(flip * half_w) * x, np.float32(oy) + np.float32(half_h) * y)


def render(label: int, rng: np.random.Generator, size: int = 32) -> np.ndarray:
    """Draw one `size` x `size` x 3 uint8 view of class `label`'s scene using randomness from `rng`.

    The scene is drawn at 2x and averaged down (anti-aliased edges); lighting and noise are at 1x.
    """
    scene = _scene(label)
    x, y = _view_grid(size, rng)
    ramp = (np.cos(scene.ramp_angle) * x + np.sin(scene.ramp_angle) * y + 2) / 4  # 0.15..0.85 over the scene
    img = scene.ground.astype(np.float32) + (scene.ground2 - scene.ground).astype(np.float32) * ramp[..., None]
    for shape in scene.shapes:  # later shapes cover earlier ones
        cx, cy = shape.centre + rng.uniform(-0.08, 0.08, 2)
        scale = np.float32(shape.scale * rng.uniform(0.85, 1.15))
        theta = shape.angle + rng.uniform(-0.3, 0.3)
        cos, sin = np.float32(np.cos(theta)), np.float32(np.sin(theta))
        dx, dy = x - np.float32(cx), y - np.float32(cy)
        mask = _MASKS[shape.kind]((dx * cos + dy * sin) / scale, (dy * cos - dx * sin) / scale, rng)
        img[mask] = np.clip(shape.colour + rng.uniform(-0.08, 0.08, 3), 0, 1)
    img = img.reshape(size, _SUPERSAMPLE, size, _SUPERSAMPLE, 3).mean(axis=(1, 3))
    mean = img.mean()
    img = (img - mean) * np.float32(rng.uniform(0.7, 1.3)) + mean * np.float32(rng.uniform(0.7, 1.3))  # contrast, brightness
    if rng.random() < 0.2:
        img = np.repeat(img.mean(axis=2, keepdims=True), 3, axis=2)
    img += rng.standard_normal(img.shape, dtype=np.float32) * np.float32(rng.uniform(0, 0.04))
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
