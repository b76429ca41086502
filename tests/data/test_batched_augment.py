"""The batched on-device views against the per-image torchvision v2 reference, so the two cannot drift apart.

Exact checks where the math is deterministic (crop+resize, hue, blur, the jitter op order), and seeded
two-sample KS / chi-square / binomial checks of the random parameters and of the resulting image statistics.
"""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np
import pytest
import torch
from PIL import Image
from scipy import stats
from torchvision.transforms import v2
from torchvision.transforms.v2 import functional as TF

from edgessl.data import batched_augment as ba
from edgessl.data.transforms import MEAN, STD, blur_kernel_size, small_crop_scale, strong_transform

P_MIN = 0.01  # seeded tests: a p-value below this means the distributions differ


@pytest.fixture(autouse=True)
def _one_thread() -> Iterator[None]:
    """Small per-image ops run far faster on one thread than contending for the shared cores."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def _reference(kind: type[v2.Transform], size: int = 32) -> tuple[v2.Transform, float]:
    """The reference strong view's transform of type `kind`, and the probability it is applied with."""
    for t in strong_transform(size).transforms:
        if isinstance(t, kind):
            return t, getattr(t, "p", 1.0)
        if isinstance(t, v2.RandomApply) and isinstance(t.transforms[0], kind):
            return t.transforms[0], t.p
    raise LookupError(kind)


def _reference_colour(size: int) -> v2.Compose:
    """The reference strong view without its crop, flip and normalization: jitter, grayscale, blur."""
    skip = (v2.ToImage, v2.RandomResizedCrop, v2.RandomHorizontalFlip, v2.ToDtype, v2.Normalize)
    return v2.Compose([t for t in strong_transform(size).transforms if not isinstance(t, skip)])


def _textured_image(seed: int = 0, size: int = 32) -> torch.Tensor:
    """A float (3, size, size) image in [0, 1]: an orange gradient with noise, so every colour op shows."""
    g = torch.Generator().manual_seed(seed)
    ramp = torch.linspace(-0.2, 0.2, size)
    base = torch.tensor([0.75, 0.45, 0.2])[:, None, None] + ramp[None, :, None] + ramp[None, None, :] / 2
    return (base + 0.1 * torch.randn(3, size, size, generator=g)).clamp(0, 1)


def _unnormalize(x: torch.Tensor) -> torch.Tensor:
    return x * torch.tensor(STD).view(1, 3, 1, 1) + torch.tensor(MEAN).view(1, 3, 1, 1)


@pytest.mark.parametrize(("in_size", "size"), [(40, 32), (256, 224)])
def test_shapes_dtypes_and_seeded_reproducibility(in_size: int, size: int) -> None:
    g = torch.Generator().manual_seed(0)
    images = torch.randint(0, 256, (3, 3, in_size, in_size), dtype=torch.uint8, generator=g)
    strong, weak = ba.BatchedTwoViews(size, seed=1)(images)
    again, _ = ba.BatchedTwoViews(size, seed=1)(images)
    for view in (strong, weak):
        assert view.shape == (3, 3, size, size) and view.dtype == torch.float32 and view.is_contiguous()
        assert torch.isfinite(view).all()
    assert torch.equal(strong, again)
    with pytest.raises(ValueError, match="uint8"):
        ba.BatchedTwoViews(size)(images.float())


def test_weak_view_has_no_colour_change() -> None:
    colours = torch.randint(30, 226, (64, 3, 1, 1), dtype=torch.uint8, generator=torch.Generator().manual_seed(0))
    images = colours.expand(64, 3, 40, 40).contiguous()  # one flat colour per image: crops cannot change it
    strong, weak = ba.BatchedTwoViews(32, seed=0)(images)
    expected = colours.float().expand(64, 3, 32, 32) / 255
    assert torch.allclose(_unnormalize(weak), expected, atol=1e-5)
    changed = (_unnormalize(strong) - expected).abs().amax((1, 2, 3)) > 1e-3
    assert changed.float().mean() > 0.6  # jitter (p=0.8) or grayscale change most strong views


def test_strong_teacher_view_changes_colour_independently_of_the_student_view() -> None:
    colours = torch.randint(30, 226, (64, 3, 1, 1), dtype=torch.uint8, generator=torch.Generator().manual_seed(0))
    images = colours.expand(64, 3, 40, 40).contiguous()
    strong, teacher = ba.BatchedTwoViews(32, seed=0, teacher_view="strong")(images)
    expected = colours.float().expand(64, 3, 32, 32) / 255
    changed = (_unnormalize(teacher) - expected).abs().amax((1, 2, 3)) > 1e-3
    assert changed.float().mean() > 0.6
    assert not torch.allclose(strong, teacher, atol=1e-3)  # own colour parameters, not a copy of the student's


@pytest.mark.parametrize(("height", "width", "size"), [(32, 32, 32), (40, 40, 32), (256, 256, 224), (48, 96, 32)])
def test_crop_resize_flip_equals_torchvision(height: int, width: int, size: int) -> None:
    g = torch.Generator().manual_seed(height + width)
    images = torch.randint(0, 256, (3, 3, height, width), dtype=torch.uint8, generator=g)
    crops = ba.sample_crops(12, height, width, g)
    flip = torch.arange(12) % 2 == 1
    source = torch.arange(12) % 3
    out = ba.resized_crops(images, source, crops, flip, size)
    for v in range(12):
        top, left, h, w = (int(c) for c in crops[v])
        ref = TF.resized_crop(images[source[v]].float() / 255, top, left, h, w, [size, size], antialias=True)
        ref = TF.horizontal_flip(ref) if flip[v] else ref
        torch.testing.assert_close(out[v], ref, atol=1e-5, rtol=0)


@pytest.mark.parametrize(("height", "width"), [(32, 32), (64, 256)])  # square; elongated (often falls back)
def test_crop_distribution_matches_torchvision(height: int, width: int) -> None:
    n = 3000
    crop, _ = _reference(v2.RandomResizedCrop)
    torch.manual_seed(0)
    image = torch.empty(3, height, width, dtype=torch.uint8)
    ref = [crop.make_params([image]) for _ in range(n)]
    ref = torch.tensor([[p["top"], p["left"], p["height"], p["width"]] for p in ref], dtype=torch.float32)
    ours = ba.sample_crops(n, height, width, torch.Generator().manual_seed(0))
    for name, stat in {
        "area": lambda c: c[:, 2] * c[:, 3] / (height * width),
        "aspect": lambda c: c[:, 3] / c[:, 2],
        "top": lambda c: c[:, 0],
        "left": lambda c: c[:, 1],
    }.items():
        assert stats.ks_2samp(stat(ours).numpy(), stat(ref).numpy()).pvalue > P_MIN, name


def test_hue_and_blur_equal_torchvision() -> None:
    x = torch.rand(6, 3, 16, 16, generator=torch.Generator().manual_seed(0))
    shift = torch.linspace(-0.5, 0.5, 6)
    sigma = torch.linspace(0.1, 2.0, 6)
    apply = torch.tensor([True, True, False, True, True, True])
    hue = ba._shift_hue(x, shift)
    blur = ba._blur(x, apply, sigma, 5)
    for i in range(6):
        torch.testing.assert_close(hue[i], TF.adjust_hue(x[i], float(shift[i])), atol=1e-5, rtol=0)
        ref = TF.gaussian_blur(x[i], [5, 5], [float(sigma[i])] * 2) if apply[i] else x[i]
        torch.testing.assert_close(blur[i], ref, atol=1e-5, rtol=0)


def test_jitter_slots_equal_torchvision_in_each_sample_order() -> None:
    n = 8
    params = ba.sample_params(n, 16, 16, torch.Generator().manual_seed(3))
    params.jitter[:] = True
    params.factors = torch.tensor([[1.3, 0.7, 1.4, 0.08], [0.6, 1.35, 0.65, -0.09]]).repeat(n // 2, 1)
    params.gray[:] = False
    params.blur[:] = False
    x = _textured_image(1, 16).expand(n, 3, 16, 16).clone()
    ops = (TF.adjust_brightness, TF.adjust_contrast, TF.adjust_saturation, TF.adjust_hue)
    out = ba.colour_(x.clone(), params, 3)
    for i in range(n):
        ref = x[i]
        for op in params.order[i].tolist():
            ref = ops[op](ref, float(params.factors[i, op]))
        torch.testing.assert_close(out[i], ref, atol=1e-5, rtol=0)


def test_jitter_order_is_a_uniform_random_permutation() -> None:
    n = 4800
    order = ba.sample_params(n, 8, 8, torch.Generator().manual_seed(0)).order
    assert torch.equal(order.sort(1).values, torch.arange(4).expand(n, 4))
    codes = (order * torch.tensor([64, 16, 4, 1])).sum(1)
    counts = torch.unique(codes, return_counts=True)[1]
    assert len(counts) == 24 and stats.chisquare(counts.numpy()).pvalue > P_MIN
    hue_slot = (order == ba.HUE).long().argmax(1)
    assert torch.equal(torch.bincount(hue_slot), torch.full((4,), n // 4))


def test_application_probabilities_match_torchvision() -> None:
    n = 20000
    params = ba.sample_params(n, 8, 8, torch.Generator().manual_seed(0))
    for kind, mask in [(v2.RandomHorizontalFlip, params.flip), (v2.ColorJitter, params.jitter),
                       (v2.RandomGrayscale, params.gray), (v2.GaussianBlur, params.blur)]:
        p = _reference(kind)[1]
        frac, tol = mask.float().mean().item(), 4 * (p * (1 - p) / mask.numel()) ** 0.5
        assert abs(frac - p) < tol, (kind.__name__, frac, p)
    identity = torch.tensor(ba.JITTER_IDENTITY)
    assert torch.equal(params.factors[~params.jitter], identity.expand(int((~params.jitter).sum()), 4))


def test_jitter_factors_and_blur_sigma_match_torchvision() -> None:
    n = 3000
    jitter, blur = _reference(v2.ColorJitter)[0], _reference(v2.GaussianBlur)[0]
    torch.manual_seed(0)
    names = ("brightness_factor", "contrast_factor", "saturation_factor", "hue_factor")
    ref_factors = torch.tensor([[p[k] for k in names] for p in (jitter.make_params([]) for _ in range(n))])
    ref_sigma = torch.tensor([blur.make_params([])["sigma"][0] for _ in range(n)])
    params = ba.sample_params(n, 8, 8, torch.Generator().manual_seed(0))
    ours = params.factors[params.jitter]
    for i, name in enumerate(names):
        assert stats.ks_2samp(ours[:, i].numpy(), ref_factors[:, i].numpy()).pvalue > P_MIN, name
    assert stats.ks_2samp(params.sigma.numpy(), ref_sigma.numpy()).pvalue > P_MIN, "sigma"
    for size in (32, 224):
        kernel = ba.BatchedTwoViews(size).blur_kernel
        assert tuple(_reference(v2.GaussianBlur, size)[0].kernel_size) == (kernel, kernel)


def test_grayscale_is_applied_exactly_where_sampled() -> None:
    n = 512
    params = ba.sample_params(n, 32, 32, torch.Generator().manual_seed(5))
    out = ba.colour_(_textured_image().expand(n, 3, 32, 32).clone(), params, blur_kernel_size(32))
    is_gray = (out[:, 0] == out[:, 1]).all((1, 2)) & (out[:, 1] == out[:, 2]).all((1, 2))
    assert torch.equal(is_gray, params.gray)


def test_colour_statistics_match_torchvision() -> None:
    """Brightness, saturation, contrast/blur and hue shifts of one image under both strong-view colour parts.

    The reference gets a float image, so its uint8 rounding stays out of the comparison. Statistics are rounded
    to 1e-4 first: unjittered images form atoms that float round-off would split."""
    n, size = 1500, 32
    reference = _reference_colour(size)
    image = _textured_image()
    torch.manual_seed(0)
    ref = torch.stack([reference(image) for _ in range(n)])
    params = ba.sample_params(n, size, size, torch.Generator().manual_seed(0))
    ours = ba.colour_(image.expand(n, 3, size, size).clone(), params, blur_kernel_size(size))

    def saturation(x: torch.Tensor) -> torch.Tensor:
        lo, hi = torch.aminmax(x, dim=1)
        return ((hi - lo) / hi.clamp(min=1e-6)).mean((1, 2))

    for name, stat in {
        "brightness": lambda x: x.mean((1, 2, 3)),
        "saturation": saturation,
        "contrast/blur": lambda x: TF.rgb_to_grayscale(x).std((1, 2, 3)),
        "hue (red - blue)": lambda x: (x[:, 0] - x[:, 2]).mean((1, 2)),
    }.items():
        ours_stat, ref_stat = (np.round(stat(x).numpy(), 4) for x in (ours, ref))
        assert stats.ks_2samp(ours_stat, ref_stat).pvalue > P_MIN, name


def test_to_uint8_tensor() -> None:
    photo = Image.new("RGB", (300, 200), (10, 20, 30))
    out = ba.ToUint8Tensor(256)(photo)
    assert type(out) is torch.Tensor and out.dtype == torch.uint8 and out.shape == (3, 256, 256)
    assert ba.ToUint8Tensor(256)(Image.new("L", (64, 80))).shape == (3, 256, 256)
    small = np.random.default_rng(0).integers(0, 256, (32, 32, 3), dtype=np.uint8)
    assert torch.equal(ba.ToUint8Tensor()(small), torch.from_numpy(small).permute(2, 0, 1))


def test_multi_crop_views_are_small_strong_crops_with_a_smaller_area() -> None:
    g = torch.Generator().manual_seed(0)
    images = torch.randint(0, 256, (8, 3, 32, 32), dtype=torch.uint8, generator=g)
    views = ba.BatchedTwoViews(32, seed=1, small_crops=2, small_size=16)(images)
    assert len(views) == 4 and views[1].shape == (8, 3, 32, 32)
    for small in views[2:]:
        assert small.shape == (8, 3, 16, 16) and torch.isfinite(small).all()
    assert not torch.equal(views[2], views[3])  # each multi-crop view draws its own crop and colour
    lo, hi = small_crop_scale(32, 16)
    assert (lo, hi) == pytest.approx((0.1, 0.5))
    areas = ba.sample_crops(4000, 32, 32, g, scale=(lo, hi))[:, 2:].prod(1) / (32 * 32)
    assert areas.max() <= hi + 0.05 and areas.mean() == pytest.approx((lo + hi) / 2, abs=0.03)
