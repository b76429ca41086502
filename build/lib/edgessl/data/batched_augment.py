"""Both ReSSL views as batched tensor ops on the training device (issue 8, recipe key `data.batched_augment`).

The per-image torchvision v2 pipeline in `transforms.py` stays the reference: this module imports its
constants and draws every random parameter per sample from the same distributions, and
`tests/data/test_batched_augment.py` checks that statistically. Loader workers then only decode and
collate uint8 tensors (`ToUint8Tensor`); the augmentation runs here without host syncs (no `.item()`,
no boolean-mask indexing, no Python loop over the batch).

Known differences from the reference, none of which changes a parameter distribution: arithmetic is
float32 throughout (the reference rounds to uint8 between PIL ops); a sample's hue-shift slot comes
from a balanced random assignment (see `sample_params`); image folders are center-cropped to a square
`load_size` before the random resized crop (see `ToUint8Tensor`).
"""

from __future__ import annotations

import inspect
import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor
from torchvision.transforms import v2
from torchvision.transforms.v2.functional import rgb_to_grayscale

from edgessl.data.transforms import (
    BLUR_P,
    BLUR_SIGMA,
    CROP_SCALE,
    FLIP_P,
    GRAY_P,
    JITTER,
    JITTER_P,
    MEAN,
    STD,
    blur_kernel_size,
    small_crop_scale,
)

# The reference RandomResizedCrop uses torchvision's default aspect-ratio range; read it rather than copy it.
CROP_RATIO: tuple[float, float] = inspect.signature(v2.RandomResizedCrop).parameters["ratio"].default
CROP_TRIES = 10  # torchvision's rejection-sampling attempts before the center-crop fallback


JITTER_IDENTITY = (1.0, 1.0, 1.0, 0.0)  # brightness, contrast, saturation, hue factors that change nothing
HUE = 3  # index of hue in the factors and op order (0-2: brightness, contrast, saturation)


def _jitter_ranges() -> tuple[tuple[float, float], ...]:
    """Factor ranges of brightness, contrast, saturation, hue, as torchvision's ColorJitter parses JITTER."""
    jitter = v2.ColorJitter(*JITTER)
    ranges = (jitter.brightness, jitter.contrast, jitter.saturation, jitter.hue)
    return tuple(r if r is not None else (c, c) for r, c in zip(ranges, JITTER_IDENTITY))


JITTER_RANGES = _jitter_ranges()


def _uniform(shape: tuple[int, ...], lo: float, hi: float, gen: torch.Generator | None,
             device: torch.device) -> Tensor:
    return torch.rand(shape, generator=gen, device=device) * (hi - lo) + lo


def sample_crops(n: int, height: int, width: int, generator: torch.Generator | None = None,
                 device: torch.device | str = "cpu", scale: tuple[float, float] = CROP_SCALE) -> Tensor:
    """(n, 4) float crops (top, left, height, width) distributed as `v2.RandomResizedCrop.make_params` with
    area range `scale`.

    Vectorized rejection sampling: all CROP_TRIES candidates are drawn at once and each sample takes its
    first valid one, falling back to torchvision's center crop when none is valid.
    """
    device = torch.device(device)
    area = height * width
    target = area * _uniform((n, CROP_TRIES), *scale, generator, device)
    ratio = torch.exp(_uniform((n, CROP_TRIES), math.log(CROP_RATIO[0]), math.log(CROP_RATIO[1]), generator, device))
    w = torch.sqrt(target * ratio).round()
    h = torch.sqrt(target / ratio).round()
    ok = (w > 0) & (w <= width) & (h > 0) & (h <= height)
    first = ok.to(torch.uint8).argmax(1, keepdim=True)  # index of the first valid try (0 if none)
    w, h, found = w.gather(1, first).squeeze(1), h.gather(1, first).squeeze(1), ok.any(1)

    in_ratio = width / height  # center-crop fallback, as torchvision
    if in_ratio < min(CROP_RATIO):
        fb_w, fb_h = width, int(round(width / min(CROP_RATIO)))
    elif in_ratio > max(CROP_RATIO):
        fb_w, fb_h = int(round(height * max(CROP_RATIO))), height
    else:
        fb_w, fb_h = width, height
    w = torch.where(found, w, float(fb_w))
    h = torch.where(found, h, float(fb_h))
    u = torch.rand((2, n), generator=generator, device=device)
    top = torch.minimum((u[0] * (height - h + 1)).floor(), height - h)
    left = torch.minimum((u[1] * (width - w + 1)).floor(), width - w)
    top = torch.where(found, top, float((height - fb_h) // 2))
    left = torch.where(found, left, float((width - fb_w) // 2))
    return torch.stack([top, left, h, w], 1)


@dataclass
class AugmentParams:
    """Random parameters of one batch of B images. Rows [0, B) of `crops`/`flip` are the strong view and, for
    the main pair, rows [B, 2B) the weak view; the other fields belong to the strong view only."""

    crops: Tensor  # (2B, 4) (main pair) or (B, 4) (a multi-crop view): top, left, height, width in input pixels
    flip: Tensor  # (2B,) or (B,) bool
    jitter: Tensor  # (B,) bool: colour jitter applied
    factors: Tensor  # (B, 4) brightness, contrast, saturation, hue; JITTER_IDENTITY where `jitter` is False
    order: Tensor  # (B, 4) which op (0-3, as in `factors`) each sample applies in each of the 4 slots
    hue_groups: Tensor  # (B,) sample ids: samples hue_groups[k::4] shift their hue in slot k
    gray: Tensor  # (B,) bool
    blur: Tensor  # (B,) bool
    sigma: Tensor  # (B,) Gaussian blur sigma (used where `blur`)


def sample_params(batch: int, height: int, width: int, generator: torch.Generator | None = None,
                  device: torch.device | str = "cpu", views: int = 2,
                  scale: tuple[float, float] = CROP_SCALE) -> AugmentParams:
    """Draw the parameters per sample, with the reference pipeline's distributions: of the strong and weak views
    (`views=2`), or of one strong multi-crop view (`views=1`, its own crop area range `scale`).

    ColorJitter applies its four ops in a random order per image. Here each sample gets a uniformly random
    order too; to stay sync-free the hue op, the only costly one, is placed by a random balanced
    assignment (`hue_groups`: a random permutation split into 4 fixed-size groups), so each slot shifts the
    hue of a known number of samples. A sample's hue slot is then uniform (exactly when B % 4 == 0, else
    within 1/B) and the other three ops fill the remaining slots in a uniformly random order.
    """
    device = torch.device(device)

    def rand(*shape: int) -> Tensor:
        return torch.rand(shape, generator=generator, device=device)

    jitter = rand(batch) < JITTER_P
    u = rand(4, batch)  # python-scalar ranges: no host-to-device copies (each would sync a GPU)
    factors = torch.stack([torch.where(jitter, lo + (hi - lo) * u[i], identity)
                           for i, ((lo, hi), identity) in enumerate(zip(JITTER_RANGES, JITTER_IDENTITY))], 1)
    hue_groups = torch.randperm(batch, generator=generator, device=device)
    slots = torch.arange(4, device=device)
    hue_slot = torch.empty(batch, dtype=torch.long, device=device)
    hue_slot[hue_groups] = torch.arange(batch, device=device) % 4
    others = rand(batch, 3).argsort(1)  # random order of brightness, contrast, saturation
    other_slot = (slots - (slots > hue_slot[:, None]).long()).clamp(max=2)
    order = torch.where(slots == hue_slot[:, None], HUE, others.gather(1, other_slot))
    return AugmentParams(
        crops=sample_crops(views * batch, height, width, generator, device, scale),
        flip=rand(views * batch) < FLIP_P,
        jitter=jitter,
        factors=factors,
        order=order,
        hue_groups=hue_groups,
        gray=rand(batch) < GRAY_P,
        blur=rand(batch) < BLUR_P,
        sigma=_uniform((batch,), *BLUR_SIGMA, generator, device),
    )


def _resize_taps(start: Tensor, length: Tensor, size: int, taps: int) -> tuple[Tensor, Tensor]:
    """Source indices and weights (V, size, taps) resizing [start, start + length) to `size` samples.

    The same antialiased bilinear (triangle) filter as `torch.nn.functional.interpolate(antialias=True)`,
    which the reference `RandomResizedCrop` uses: support max(scale, 1), taps clipped at the crop edge and
    renormalized.
    """
    scale = (length / size)[:, None]
    support = scale.clamp(min=1.0)
    center = scale * (torch.arange(size, device=start.device) + 0.5)
    lo = (center - support + 0.5).floor().clamp(min=0)
    hi = torch.minimum((center + support + 0.5).floor(), length[:, None])
    j = lo[..., None] + torch.arange(taps, device=start.device)
    w = (1 - ((j - center[..., None] + 0.5) / support[..., None]).abs()).clamp(min=0) * (j < hi[..., None])
    w = w / w.sum(-1, keepdim=True)
    idx = torch.minimum(start[:, None, None] + j, (start + length - 1)[:, None, None]).long()
    return idx, w


def _mix_rows(table: Tensor, taps: Tensor, weights: Tensor) -> Tensor:
    """sum over t of weights[..., t] * table[taps[..., t]]: rows of a 2-D table gathered and mixed."""
    out = torch.mul(table[taps[..., 0]], weights[..., 0, None])
    for t in range(1, taps.shape[-1]):
        out.addcmul_(table[taps[..., t]], weights[..., t, None])
    return out


def resized_crops(images: Tensor, source: Tensor, crops: Tensor, flip: Tensor, size: int) -> Tensor:
    """Crop `crops` (V, 4) out of `images[source]`, resize each to `size` x `size`, flip where `flip`.

    `images` is uint8 (B, 3, H, W); the result is float (V, 3, size, size) in [0, 1]. Separable resampling
    as two passes that gather whole contiguous rows (fast on CPU and GPU): image rows first, then columns
    after a transpose. The flip is folded into the column order.
    """
    batch, channels, height, width = images.shape
    views = crops.shape[0]
    top, left, h, w = crops.unbind(1)
    rows, wy = _resize_taps(top, h, size, math.ceil(2 * max(height / size, 1.0)))
    cols, wx = _resize_taps(left, w, size, math.ceil(2 * max(width / size, 1.0)))
    cols = torch.where(flip[:, None, None], cols.flip(1), cols)
    wx = torch.where(flip[:, None, None], wx.flip(1), wx)

    table = images.permute(0, 2, 1, 3).reshape(batch * height, channels * width)
    out = _mix_rows(table, rows + (source * height)[:, None, None], wy / 255.0)  # (V, y, C * W)
    table = out.view(views, size * channels, width).transpose(1, 2).reshape(views * width, size * channels)
    offsets = torch.arange(views, device=images.device) * width
    out = _mix_rows(table, cols + offsets[:, None, None], wx)  # (V, x, y * C)
    return out.view(views, size, size, channels).permute(0, 3, 2, 1).contiguous()


def _shift_hue(x: Tensor, shift: Tensor) -> Tensor:
    """Rotate the hue of float RGB images (N, 3, H, W) in [0, 1] by `shift` (N,) turns, via HSV like
    torchvision's `adjust_hue` (the HSV -> RGB step uses the closed form, identical in value)."""
    r, g, b = x.unbind(1)
    minc, maxc = torch.aminmax(x, dim=1)
    delta = maxc - minc
    safe = torch.where(delta > 0, delta, 1.0)
    hue = torch.where(maxc == r, (g - b) / safe, torch.where(maxc == g, (b - r) / safe + 2, (r - g) / safe + 4))
    hue = (hue / 6 + shift[:, None, None]).remainder(1.0)
    n = 5.0 - 2.0 * torch.arange(3, device=x.device)  # 5, 3, 1 -> R, G, B
    k = (n[None, :, None, None] + 6 * hue[:, None]).remainder(6)
    return maxc[:, None] - delta[:, None] * torch.minimum(k, 4 - k).clamp(0, 1)


def colour_(x: Tensor, params: AugmentParams, blur_kernel: int) -> Tensor:
    """The strong view's colour part on float (B, 3, H, W) in [0, 1]: jitter (random op order per sample),
    grayscale, Gaussian blur, each applied per sample with its probability. Overwrites `x` (saves memory
    traffic); returns the result."""
    for slot in range(4):
        op = params.order[:, slot]
        f = torch.where(op == HUE, 1.0, params.factors.gather(1, op[:, None]).squeeze(1))[:, None, None, None]
        gray = rgb_to_grayscale(x)
        # brightness blends with black, contrast with the mean gray level, saturation with the gray image
        target = torch.where((op == 2)[:, None, None, None], gray, gray.mean((1, 2, 3), keepdim=True)
                             * (op == 1)[:, None, None, None])
        x = x.lerp_(target, 1 - f).clamp_(0, 1)
        idx = params.hue_groups[slot::4]
        x.index_copy_(0, idx, _shift_hue(x[idx], params.factors[idx, HUE]))
    x = torch.where(params.gray[:, None, None, None], rgb_to_grayscale(x).expand_as(x), x)
    return _blur(x, params.blur, params.sigma, blur_kernel)


def _blur(x: Tensor, apply: Tensor, sigma: Tensor, kernel_size: int) -> Tensor:
    """Per-sample separable Gaussian blur with reflect padding, as `v2.GaussianBlur`; identity where not `apply`."""
    batch, channels, height, width = x.shape
    radius = kernel_size // 2
    offsets = torch.arange(-radius, radius + 1, device=x.device, dtype=x.dtype)
    kernel = torch.softmax(-(offsets**2) / (2 * sigma[:, None] ** 2), 1)
    kernel = torch.where(apply[:, None], kernel, (offsets == 0).to(x.dtype))
    kernel = kernel.repeat_interleave(channels, 0)
    groups = batch * channels
    padded = F.pad(x, (radius,) * 4, mode="reflect").reshape(1, groups, height + 2 * radius, width + 2 * radius)
    out = F.conv2d(padded, kernel.view(groups, 1, kernel_size, 1), groups=groups)
    out = F.conv2d(out, kernel.view(groups, 1, 1, kernel_size), groups=groups)
    return out.view(batch, channels, height, width)


class BatchedTwoViews:
    """ReSSL's (strong, weak) views of a uint8 batch, computed on `device` with per-sample randomness.

    Call with uint8 (B, 3, H, W) images of one size, on `device` or pinned on the host (they are moved
    there); returns contiguous normalized float32 (B, 3, size, size) tensors `(strong, weak)`, as
    `transforms.ressl_views(size)` gives per image, followed by `small_crops` strong multi-crop views
    (B, 3, small_size, small_size) when asked. `teacher_view="strong"` gives the teacher's view the strong
    view's colour ops too, with parameters drawn independently. `seed` makes the views reproducible with a dedicated generator
    on `device` (else torch's default generator is used).

    Engine use: a DataLoader over the dataset with `ToUint8Tensor` as its transform (pin_memory=True on GPU),
    then `strong, weak, *small = augment(images)` per batch inside the training step.
    """

    def __init__(self, size: int, device: torch.device | str = "cpu", seed: int | None = None,
                 small_crops: int = 0, small_size: int = 0, teacher_view: str = "weak") -> None:
        self.size = size
        self.teacher_strong = teacher_view == "strong"
        self.small_crops, self.small_size = small_crops, small_size
        self.small_blur_kernel = blur_kernel_size(small_size) if small_crops else 0
        self.device = torch.device(device)
        self.blur_kernel = blur_kernel_size(size)
        self.generator = None if seed is None else torch.Generator(self.device).manual_seed(seed)
        self.mean = torch.tensor(MEAN, device=self.device).view(1, 3, 1, 1)
        self.std = torch.tensor(STD, device=self.device).view(1, 3, 1, 1)

    def sample(self, batch: int, height: int, width: int) -> AugmentParams:
        """Random parameters for a batch of `batch` images of `height` x `width`."""
        return sample_params(batch, height, width, self.generator, self.device)

    def apply(self, images: Tensor, params: AugmentParams, teacher: AugmentParams | None = None
              ) -> tuple[Tensor, Tensor]:
        """Both views of `images` under given parameters; `teacher` (colour fields only) makes the teacher's view
        strong as well."""
        batch = images.shape[0]
        source = torch.arange(2 * batch, device=self.device) % batch
        views = resized_crops(images, source, params.crops, params.flip, self.size)
        strong = colour_(views[:batch], params, self.blur_kernel)
        other = views[batch:] if teacher is None else colour_(views[batch:], teacher, self.blur_kernel)
        return self.normalize_(strong), self.normalize_(other)

    def small_views(self, images: Tensor) -> list[Tensor]:
        """The multi-crop views: each a strong view at `small_size` with its own, proportionally smaller crop."""
        batch, _, height, width = images.shape
        source = torch.arange(batch, device=self.device)
        scale = small_crop_scale(self.size, self.small_size)
        out = []
        for _ in range(self.small_crops):
            params = sample_params(batch, height, width, self.generator, self.device, views=1, scale=scale)
            crops = resized_crops(images, source, params.crops, params.flip, self.small_size)
            out.append(self.normalize_(colour_(crops, params, self.small_blur_kernel)))
        return out

    def normalize_(self, x: Tensor) -> Tensor:
        """ImageNet normalization of float images in [0, 1], in place."""
        return x.sub_(self.mean).div_(self.std)

    def __call__(self, images: Tensor) -> tuple[Tensor, ...]:
        if images.dtype != torch.uint8 or images.ndim != 4 or images.shape[1] != 3:
            raise ValueError(f"expected uint8 (B, 3, H, W) images, got {images.dtype} {tuple(images.shape)}")
        images = images.to(self.device, non_blocking=True)
        batch, _, height, width = images.shape
        teacher = sample_params(batch, height, width, self.generator, self.device, views=1) \
            if self.teacher_strong else None
        pair = self.apply(images, self.sample(batch, height, width), teacher)
        return (*pair, *self.small_views(images))


class ToUint8Tensor(v2.Compose):
    """Loader-side transform for batched augmentation: a PIL image or HWC uint8 array -> uint8 (3, S, S) tensor,
    so batches collate.

    Datasets stored at one small size (CIFAR 32 px, Tiny ImageNet 64, STL-10 96) pass `load_size=None`
    and keep their pixels. Image folders of varied sizes pass e.g. `load_size=256` for 224 px training: the
    shorter side is resized to `load_size` and the center square kept, and the random resized crop then
    samples from that square (the per-image reference crops from the full image instead).
    """

    def __init__(self, load_size: int | None = None) -> None:
        resize = [] if load_size is None else [v2.Resize(load_size, antialias=True), v2.CenterCrop(load_size)]
        super().__init__(resize + [v2.ToImage(), v2.RGB(), v2.ToPureTensor()])
