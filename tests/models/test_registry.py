"""Any timm model as the student, with the generic stride-1 stem: one model per family, tiny inputs."""

import pytest
import torch

from edgessl.errors import EdgeSSLError
from edgessl.models.registry import (ARCHS, build_backbone, check_arch, feature_dim, probe_output_shape,
                                     timm_kwargs)

# one per family of the compatibility matrix (benchmarks/compat_matrix.py); the smallest member of each
FAMILY_SUBSET = ["mobilenetv3_small_050", "tf_mobilenetv3_small_minimal_100", "mobilenetv4_conv_small_050",
                 "efficientnet_lite0", "repvit_m0_9", "fastvit_t8", "mobileone_s0", "efficientvit_b0",
                 "ghostnet_050", "repghostnet_050", "lcnet_050", "mobilevit_xxs", "regnetx_002", "resnet18"]
FIXED_SIZE = {"efficientformerv2_s0": 224, "efficientvit_m0": 32}  # timm: fixed_input_size; the smallest that runs


def test_curated_and_any_timm_name_build():
    assert check_arch("resnet18") is ARCHS["resnet18"]
    assert "repvit_m0_9" not in ARCHS and check_arch("repvit_m0_9").stem == "generic"


def test_unknown_name_suggests_close_timm_names():
    with pytest.raises(EdgeSSLError, match="unknown teacher.arch 'repvit_m9': not a timm model; did you mean repvit_m0_9"):
        check_arch("repvit_m9", "teacher.arch")


@pytest.mark.parametrize("arch", FAMILY_SUBSET)
def test_stride1_stem_gives_twice_the_final_map(arch):
    """Stride 1 halves the network's total stride (a quarter for the ResNet's CIFAR stem, which also drops the
    max-pool): at 64 px the last feature map is that of 128 (256) px at stride 2."""
    maps = []
    factor = 4 if check_arch(arch).stem == "resnet" else 2
    for stride, size in ((2, 64 * factor), (1, 64)):
        model = build_backbone(arch, stride).eval()
        with torch.no_grad():  # unpooled: the last feature map itself
            maps.append(model.forward_features(torch.zeros(1, 3, size, size)).shape)
    assert maps[0] == maps[1]
    pooled = build_backbone(arch, 1)
    assert probe_output_shape(pooled, 32) == (1, feature_dim(pooled))


@pytest.mark.parametrize("arch, size", FIXED_SIZE.items())
def test_fixed_size_model_refuses_stride1_with_the_size_that_works(arch, size):
    with pytest.raises(EdgeSSLError, match=rf"model.arch={arch} cannot take model.stem_stride=1: .*fixed \(224 px.*"
                                           rf"model.stem_stride=2 with data.image_size={size}$"):
        build_backbone(arch, 1)


def test_patch_embedding_stem_is_refused():
    with pytest.raises(EdgeSSLError, match="patch-embedding stem .*stride 4.*data.image_size="):
        build_backbone("convnext_atto", 1)


def test_model_that_cannot_run_at_the_size_names_one_that_can():
    with pytest.raises(EdgeSSLError, match=r"does not run at 32 px .*it runs at data.image_size=224"):
        probe_output_shape(build_backbone("efficientformerv2_s0"), 32)


def _tf_same_pads(model: torch.nn.Module) -> int:
    return sum(type(m).__name__.endswith("Same") for m in model.modules())  # timm's Conv2dSame and friends


def test_tf_models_are_built_with_symmetric_padding_unless_a_checkpoint_says_otherwise():
    """TF "same" padding only reproduces Google's weights, which edgessl never loads; it costs LiteRT int8 a pad,
    a requantize and two transposes per strided block. A checkpoint from before (no timm options recorded) builds
    as it was trained."""
    assert timm_kwargs("tf_mobilenetv3_small_minimal_100") == {"pad_type": ""} == timm_kwargs("tf_efficientnet_b0")
    assert timm_kwargs("mobilenetv3_small_100") == {}
    assert _tf_same_pads(build_backbone("tf_mobilenetv3_small_minimal_100", 1)) == 0
    assert _tf_same_pads(build_backbone("tf_mobilenetv3_small_minimal_100", 1, {})) == 5  # stem, 4 strided dw
