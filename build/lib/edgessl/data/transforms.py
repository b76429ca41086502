"""ReSSL's two views (spec section 2) and the evaluation transform, as torchvision v2 pipelines.

The augmentation parameters are module constants so the batched on-device implementation
(`batched_augment.py`) uses the same numbers, and a test can check that it does.
Pipelines take PIL images (what every edgessl dataset returns) and convert to a tensor last: measured on one core,
ColorJitter runs about 2x faster on PIL than on uint8 tensors, and nothing else is slower. Tensors are accepted too.
"""

from __future__ import annotations

from typing import Any, Callable, Sequence

import torch
from torchvision.transforms import v2
from torchvision.transforms.v2 import functional as F

MEAN = (0.485, 0.456, 0.406)  # ImageNet statistics, used by every edgessl encoder and exporter
STD = (0.229, 0.224, 0.225)

CROP_SCALE = (0.2, 1.0)  # RandomResizedCrop area range, both views
FLIP_P = 0.5
JITTER = (0.4, 0.4, 0.4, 0.1)  # brightness, contrast, saturation, hue
JITTER_P = 0.8
GRAY_P = 0.2
BLUR_SIGMA = (0.1, 2.0)
BLUR_P = 0.5
BLUR_KERNEL_FRACTION = 0.1  # blur kernel ~10% of the image side
EVAL_CROP_FRACTION = 0.875  # larger images: resize shorter side to size / 0.875, then center crop


def blur_kernel_size(size: int) -> int:
    """Odd Gaussian-blur kernel of about 10% of `size`, at least 3."""
    return max(3, int(size * BLUR_KERNEL_FRACTION) // 2 * 2 + 1)


def _to_float() -> list[v2.Transform]:
    return [v2.ToImage(), v2.ToDtype(torch.float32, scale=True), v2.Normalize(MEAN, STD)]


def small_crop_scale(size: int, small: int) -> tuple[float, float]:
    """Area range of a multi-crop view of side `small` when the main views have side `size`: CROP_SCALE shrunk in
    proportion to the side, as the official ReSSL multi-crop (224 px (0.2, 1.0) ... 96 px (0.086, 0.429))."""
    return CROP_SCALE[0] * small / size, CROP_SCALE[1] * small / size


def _crop_flip(size: int, scale: tuple[float, float] = CROP_SCALE) -> list[v2.Transform]:
    return [v2.RandomResizedCrop(size, scale=scale, antialias=True), v2.RandomHorizontalFlip(FLIP_P)]


def weak_transform(size: int) -> v2.Compose:
    """Teacher view: random resized crop and flip only (no colour change)."""
    return v2.Compose(_crop_flip(size) + _to_float())


def strong_transform(size: int, scale: tuple[float, float] = CROP_SCALE) -> v2.Compose:
    """Student view: crop (area range `scale`), flip, colour jitter, grayscale and Gaussian blur."""
    return v2.Compose(
        _crop_flip(size, scale)
        + [
            v2.RandomApply([v2.ColorJitter(*JITTER)], p=JITTER_P),
            v2.RandomGrayscale(p=GRAY_P),
            v2.RandomApply([v2.GaussianBlur(blur_kernel_size(size), sigma=BLUR_SIGMA)], p=BLUR_P),
        ]
        + _to_float()
    )


class EvalResize(v2.Transform):
    """Square `size` crop: images at `size` are only center-cropped; larger ones are resized to
    `size / 0.875` on the shorter side first (the standard eval crop); smaller ones are upsampled to `size`."""

    def __init__(self, size: int) -> None:
        super().__init__()
        self.size = size

    def transform(self, inpt: Any, params: dict[str, Any]) -> Any:
        short = min(F.get_size(inpt))
        target = self.size if short <= self.size else int(self.size / EVAL_CROP_FRACTION)
        if short != target:
            inpt = F.resize(inpt, [target], antialias=True)
        return F.center_crop(inpt, [self.size])


def eval_transform(size: int) -> v2.Compose:
    """Deterministic transform for kNN / linear evaluation and export calibration."""
    return v2.Compose([EvalResize(size)] + _to_float())


class TwoViews:
    """Apply both ReSSL views to one image; returns `(strong, weak, *small)` = (student input, teacher input,
    the student's extra multi-crop views, if any), `pairs` times over with independent draws, one after the other
    (`merge_view_pairs` turns the collated batch into one batch of each view)."""

    def __init__(self, weak: Callable[[Any], torch.Tensor], strong: Callable[[Any], torch.Tensor],
                 small: Sequence[Callable[[Any], torch.Tensor]] = (), pairs: int = 1) -> None:
        self.weak = weak
        self.strong = strong
        self.small = tuple(small)
        self.pairs = pairs

    def __call__(self, img: Any) -> tuple[torch.Tensor, ...]:
        return tuple(v for _ in range(self.pairs)
                     for v in (self.strong(img), self.weak(img), *(t(img) for t in self.small)))

    def __repr__(self) -> str:
        return f"TwoViews(weak={self.weak}, strong={self.strong}, small={len(self.small)}, pairs={self.pairs})"


def ressl_views(size: int, small_crops: int = 0, small_size: int = 0, teacher_view: str = "weak",
                pairs: int = 1) -> TwoViews:
    """The per-image views a ReSSL step needs: strong and the teacher's (`teacher_view`: weak, or a second,
    independent strong view) at `size`, plus `small_crops` strong crops at `small_size` (multi-crop, spec
    section 2); `pairs` independent draws of all of them."""
    small = strong_transform(small_size, small_crop_scale(size, small_size)) if small_crops else None
    teacher = strong_transform(size) if teacher_view == "strong" else weak_transform(size)
    return TwoViews(teacher, strong_transform(size), [small] * small_crops, pairs)


def merge_view_pairs(views: Sequence[torch.Tensor], pairs: int) -> tuple[torch.Tensor, ...]:
    """`pairs` draws of the views of a batch, one draw after the other (B-row tensors), as one batch of each view:
    (strong, weak, *small) with pairs * B rows, draw-major, so that row i of the student's views and row i of the
    teacher's view come from the same image."""
    if pairs == 1:  # nothing to stack (and no copy)
        return tuple(views)
    k = len(views) // pairs
    return tuple(torch.cat(views[j::k]) for j in range(k))
