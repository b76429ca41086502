"""The encoders edgessl trains: timm models built for export, output = pooled pre-logits.

Adding a student is one entry in `ARCHS`.
"""

from __future__ import annotations

from dataclasses import dataclass

import timm
import torch
from torch import nn

from edgessl.errors import EdgeSSLError


@dataclass(frozen=True)
class Arch:
    """How to build one architecture and how to make its stem stride 1 for 32/64 px inputs."""

    timm_name: str
    stem: str  # "conv_stem" (MobileNet/EfficientNet family) or "resnet"


ARCHS: dict[str, Arch] = {
    "mobilenetv3_small_100": Arch("mobilenetv3_small_100", "conv_stem"),
    "mobilenetv3_small_075": Arch("mobilenetv3_small_075", "conv_stem"),
    "mobilenetv3_large_100": Arch("mobilenetv3_large_100", "conv_stem"),
    # ReLU, no squeeze-excite: the MobileNetV3 variants made for int8 accelerators
    "tf_mobilenetv3_small_minimal_100": Arch("tf_mobilenetv3_small_minimal_100", "conv_stem"),
    "tf_mobilenetv3_large_minimal_100": Arch("tf_mobilenetv3_large_minimal_100", "conv_stem"),
    "mobilenetv2_100": Arch("mobilenetv2_100", "conv_stem"),
    "mobilenetv4_conv_small": Arch("mobilenetv4_conv_small", "conv_stem"),
    "efficientnet_b0": Arch("efficientnet_b0", "conv_stem"),
    "efficientnet_lite0": Arch("efficientnet_lite0", "conv_stem"),
    "resnet18": Arch("resnet18", "resnet"),
    "resnet34": Arch("resnet34", "resnet"),
    "resnet50": Arch("resnet50", "resnet"),
    "resnet101": Arch("resnet101", "resnet"),
}


def check_arch(name: str, key: str = "model.arch") -> Arch:
    """The registry entry for `name`, or a one-line error listing the valid names."""
    if name not in ARCHS:
        raise EdgeSSLError(f"unknown {key} '{name}'; choose one of: {', '.join(ARCHS)}")
    return ARCHS[name]


def _reduce_stem(model: nn.Module, stem: str) -> None:
    """Stride-1 stem so a 32 px input does not end as a 1x1 map (the official CIFAR ResNet stem)."""
    if stem == "conv_stem":
        model.conv_stem.stride = (1, 1)
    else:  # ResNet: 3x3 stride-1 conv and no max-pool
        out = model.conv1.out_channels
        model.conv1 = nn.Conv2d(3, out, kernel_size=3, stride=1, padding=1, bias=False)
        model.maxpool = nn.Identity()


def build_backbone(name: str, stem_stride: int = 2) -> nn.Module:
    """A randomly initialised timm encoder: image (N,3,H,W) -> pooled pre-logits (N, feature_dim)."""
    arch = check_arch(name)
    model = timm.create_model(arch.timm_name, pretrained=False, num_classes=0, exportable=True)
    if stem_stride == 1:
        _reduce_stem(model, arch.stem)
    elif stem_stride != 2:
        raise EdgeSSLError(f"model.stem_stride must be 1 or 2; got {stem_stride}")
    return model


def feature_dim(model: nn.Module) -> int:
    """Width of the pooled pre-logits (after MobileNetV3's head conv, unlike `num_features`)."""
    dim = getattr(model, "head_hidden_size", None) or model.num_features
    return int(dim)


@torch.no_grad()
def probe_output_shape(model: nn.Module, image_size: int) -> torch.Size:
    """Run one dummy image through `model` (in eval mode) to check it accepts `image_size`."""
    was_training = model.training
    model.eval()
    try:
        return model(torch.zeros(1, 3, image_size, image_size)).shape
    finally:
        model.train(was_training)
