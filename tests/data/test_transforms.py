import numpy as np
import pytest
import torch
from PIL import Image
from torchvision.transforms import v2

from edgessl.data import transforms as T

SIZES = (32, 64, 96, 224)


def _noise(h: int, w: int, seed: int = 0) -> Image.Image:
    return Image.fromarray(np.random.default_rng(seed).integers(0, 256, (h, w, 3), dtype=np.uint8))


def _normalized(colour: tuple[int, int, int]) -> torch.Tensor:
    return (torch.tensor(colour) / 255 - torch.tensor(T.MEAN)) / torch.tensor(T.STD)


@pytest.mark.parametrize("size", SIZES)
@pytest.mark.parametrize("build", [T.weak_transform, T.strong_transform, T.eval_transform])
def test_output_shape_and_dtype(size: int, build) -> None:
    transform = build(size)
    for h, w in ((size, size), (size // 2, size), (size + 37, size * 2)):  # at, below and above the target size
        out = transform(_noise(h, w))
        assert out.shape == (3, size, size) and out.dtype == torch.float32


def test_tensor_input_is_accepted() -> None:
    img = torch.randint(0, 256, (3, 40, 48), dtype=torch.uint8)
    assert T.strong_transform(32)(img).shape == (3, 32, 32)


def test_weak_view_keeps_colour_strong_view_changes_it() -> None:
    colour = (200, 60, 30)
    img = Image.new("RGB", (40, 40), colour)
    expected = _normalized(colour)[:, None, None]
    torch.manual_seed(0)
    for _ in range(10):
        assert torch.allclose(T.weak_transform(32)(img), expected.expand(3, 32, 32), atol=1e-5)
    changed = [not torch.allclose(T.strong_transform(32)(img), expected, atol=1e-3) for _ in range(10)]
    assert 0 < sum(changed)


def test_eval_is_plain_normalisation_at_size() -> None:
    img = _noise(32, 32)
    pixels = torch.from_numpy(np.array(img)).permute(2, 0, 1) / 255
    expected = (pixels - torch.tensor(T.MEAN)[:, None, None]) / torch.tensor(T.STD)[:, None, None]
    assert torch.allclose(T.eval_transform(32)(img), expected, atol=1e-5)


def test_eval_resizes_larger_images_then_center_crops() -> None:
    img = _noise(80, 100)
    short = int(64 / T.EVAL_CROP_FRACTION)  # 73
    resized = v2.functional.resize(v2.functional.to_image(img), [short], antialias=True)
    assert resized.shape == (3, short, short * 100 // 80)
    expected = v2.functional.to_dtype(v2.functional.center_crop(resized, [64]), scale=True)
    expected = v2.functional.normalize(expected, T.MEAN, T.STD)
    assert torch.allclose(T.eval_transform(64)(img), expected, atol=2 / 255 / min(T.STD))  # PIL vs tensor rounding


def test_parameters_match_the_spec() -> None:
    assert (T.CROP_SCALE, T.JITTER, T.JITTER_P, T.GRAY_P, T.BLUR_SIGMA, T.BLUR_P) == (
        (0.2, 1.0), (0.4, 0.4, 0.4, 0.1), 0.8, 0.2, (0.1, 2.0), 0.5
    )
    assert (T.MEAN, T.STD) == ((0.485, 0.456, 0.406), (0.229, 0.224, 0.225))
    assert [T.blur_kernel_size(s) for s in SIZES] == [3, 7, 9, 23]
    ops = {type(t): t for t in T.strong_transform(64).transforms}
    assert ops[v2.RandomResizedCrop].scale == T.CROP_SCALE
    applies = [t for t in T.strong_transform(64).transforms if isinstance(t, v2.RandomApply)]
    assert [a.p for a in applies] == [T.JITTER_P, T.BLUR_P]
    jitter, blur = applies[0].transforms[0], applies[1].transforms[0]
    assert jitter.brightness == (0.6, 1.4) and jitter.hue == (-0.1, 0.1)
    assert blur.kernel_size == (7, 7) and tuple(blur.sigma) == T.BLUR_SIGMA
    assert ops[v2.RandomGrayscale].p == T.GRAY_P


def test_two_views_returns_strong_then_weak() -> None:
    views = T.TwoViews(weak=lambda img: ("weak", img), strong=lambda img: ("strong", img))
    assert views("x") == (("strong", "x"), ("weak", "x"))


def test_ressl_views_adds_the_multi_crop_views_after_the_pair() -> None:
    img = Image.new("RGB", (32, 32), (120, 30, 200))
    views = T.ressl_views(32, small_crops=3, small_size=16)(img)
    assert [v.shape[-1] for v in views] == [32, 32, 16, 16, 16]
    assert len(T.ressl_views(32)(img)) == 2


def test_ressl_views_strong_teacher_view_changes_colour() -> None:
    colour = (200, 60, 30)
    img = Image.new("RGB", (40, 40), colour)
    expected = _normalized(colour)[:, None, None].expand(3, 32, 32)
    torch.manual_seed(0)
    teacher_views = [T.ressl_views(32, teacher_view="strong")(img)[1] for _ in range(10)]
    assert sum(not torch.allclose(v, expected, atol=1e-3) for v in teacher_views) > 0
    assert all(torch.allclose(T.ressl_views(32)(img)[1], expected, atol=1e-5) for _ in range(5))


def test_view_pairs_are_independent_draws_merged_draw_major() -> None:
    img = torch.randint(0, 256, (3, 32, 32), dtype=torch.uint8)
    views = T.ressl_views(32, small_crops=1, small_size=16, pairs=2)(img)
    assert [tuple(v.shape[-2:]) for v in views] == [(32, 32), (32, 32), (16, 16)] * 2
    assert not torch.allclose(views[0], views[3])  # the second draw is its own
    batch = [torch.stack([v, v + 1]) for v in views]  # a collated batch of two images
    strong, weak, small = T.merge_view_pairs(batch, 2)
    assert strong.shape == (4, 3, 32, 32) and small.shape == (4, 3, 16, 16)
    assert torch.equal(strong, torch.cat([batch[0], batch[3]])) and torch.equal(weak, torch.cat([batch[1], batch[4]]))
