"""The encoders edgessl trains: any timm model (`timm.list_models()`), built for export, output = pooled pre-logits.

`ARCHS` is the curated list: the students the README measures, and what edgessl knows about them beyond timm's
metadata (the ResNet's CIFAR stem); any other timm name is built the same way with the generic stem handling.

timm's `tf_` models (EfficientNet, MixNet, MobileNetV3 ported from TensorFlow) are built with symmetric padding
(`pad_type=""`): their TF "same" padding exists to reproduce Google's weights, which edgessl never loads, and its
asymmetric pad before each strided convolution cost int8 LiteRT a pad, a requantize and two layout transposes per
strided block (tf_mobilenetv3_small_minimal_100 at 224 px: int8 1.17x fp32 with it, 1.48x without; docs/students.md).
A checkpoint records the timm options its encoder was built with (`encoder.timm_kwargs`; none before this rule),
so older checkpoints load as they were trained.
"""

from __future__ import annotations

import difflib
from dataclasses import dataclass
from functools import cache

import timm
import torch
from torch import nn

from edgessl.errors import EdgeSSLError
from edgessl.models.stem import reduce_stem, working_size


@dataclass(frozen=True)
class Arch:
    """How to build one architecture and how to make its stem stride 1 for 32/64 px inputs."""

    timm_name: str
    stem: str = "generic"  # "generic" (timm's first_conv made stride 1) or "resnet" (3x3 stride-1 conv, no max-pool)
    timm_kwargs: tuple[tuple[str, str], ...] = ()  # extra timm.create_model options, as (name, value) pairs

    @classmethod
    def of(cls, timm_name: str, stem: str = "generic") -> Arch:
        """The entry for `timm_name`: TF-ported models (`tf_` prefix) with symmetric padding (module docstring)."""
        return cls(timm_name, stem, (("pad_type", ""),) if timm_name.startswith("tf_") else ())


ARCHS: dict[str, Arch] = {
    "mobilenetv3_small_100": Arch("mobilenetv3_small_100"),
    "mobilenetv3_small_075": Arch("mobilenetv3_small_075"),
    "mobilenetv3_large_100": Arch("mobilenetv3_large_100"),
    # ReLU, no squeeze-excite: the MobileNetV3 variants made for int8 accelerators
    "tf_mobilenetv3_small_minimal_100": Arch.of("tf_mobilenetv3_small_minimal_100"),
    "tf_mobilenetv3_large_minimal_100": Arch.of("tf_mobilenetv3_large_minimal_100"),
    "mobilenetv2_100": Arch("mobilenetv2_100"),
    "mobilenetv4_conv_small": Arch("mobilenetv4_conv_small"),
    "efficientnet_b0": Arch("efficientnet_b0"),
    "efficientnet_lite0": Arch("efficientnet_lite0"),
    "resnet18": Arch("resnet18", "resnet"),
    "resnet34": Arch("resnet34", "resnet"),
    "resnet50": Arch("resnet50", "resnet"),
    "resnet101": Arch("resnet101", "resnet"),
}


@cache
def timm_names() -> frozenset[str]:
    """Every architecture timm can build (no weights needed)."""
    return frozenset(timm.list_models())


def check_arch(name: str, key: str = "model.arch") -> Arch:
    """The curated entry for `name`, a generic one for any other timm model, or a one-line error naming the
    closest timm names."""
    if name in ARCHS:
        return ARCHS[name]
    if name in timm_names():
        return Arch.of(name)
    close = difflib.get_close_matches(name, sorted(timm_names()), n=3, cutoff=0.5)
    hint = f"did you mean {', '.join(close)}?" if close else "see timm.list_models() for the names"
    raise EdgeSSLError(f"unknown {key} '{name}': not a timm model; {hint}")


def _resnet_stem(model: nn.Module) -> None:
    """The official CIFAR ResNet stem: a 3x3 stride-1 conv and no max-pool, so 32 px does not end as a 1x1 map."""
    out = model.conv1.out_channels
    model.conv1 = nn.Conv2d(3, out, kernel_size=3, stride=1, padding=1, bias=False)
    model.maxpool = nn.Identity()


def timm_kwargs(name: str) -> dict[str, str]:
    """The timm options edgessl builds `name` with today (recorded in checkpoints as `encoder.timm_kwargs`)."""
    return dict(check_arch(name).timm_kwargs)


def build_backbone(name: str, stem_stride: int = 2, kwargs: dict[str, str] | None = None) -> nn.Module:
    """A randomly initialised timm encoder: image (N,3,H,W) -> pooled pre-logits (N, feature_dim).

    `kwargs`: the timm options a checkpoint recorded (`{}` for one written before they were); default today's."""
    arch = check_arch(name)
    if stem_stride not in (1, 2):
        raise EdgeSSLError(f"model.stem_stride must be 1 or 2; got {stem_stride}")
    options = dict(arch.timm_kwargs) if kwargs is None else kwargs
    model = timm.create_model(arch.timm_name, pretrained=False, num_classes=0, exportable=True, **options)
    if stem_stride == 1:
        _resnet_stem(model) if arch.stem == "resnet" else reduce_stem(model, name)
    return model


def feature_dim(model: nn.Module) -> int:
    """Width of the pooled pre-logits (after MobileNetV3's head conv, unlike `num_features`)."""
    dim = getattr(model, "head_hidden_size", None) or model.num_features
    return int(dim)


@torch.no_grad()
def probe_output_shape(model: nn.Module, image_size: int) -> torch.Size:
    """Run one dummy image through `model` (in eval mode) to check it accepts `image_size`; a model that
    cannot (a fixed input size, too few pixels for its attention windows) is a one-line error naming one that can."""
    was_training = model.training
    model.eval()
    try:
        return model(torch.zeros(1, 3, image_size, image_size)).shape
    except (RuntimeError, AssertionError, ValueError) as exc:
        size = working_size(model)
        hint = f"it runs at data.image_size={size}" if size else "pick another model.arch"
        first = (str(exc).strip().splitlines() or [type(exc).__name__])[0][:120]
        raise EdgeSSLError(f"the encoder does not run at {image_size} px ({first}); {hint}") from None
    finally:
        model.train(was_training)
