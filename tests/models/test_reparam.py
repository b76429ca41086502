"""Reparameterizable students: trained multi-branch, fused for evaluation, export and pruning."""

import pytest
import torch
from torch import nn

from edgessl.checkpoint import Checkpoint
from edgessl.models.encoder_loading import load_encoder
from edgessl.models.registry import build_backbone
from edgessl.models.reparam import inference_form, is_reparameterizable

REPARAM = ["mobileone_s0", "repvit_m0_9", "fastvit_t8", "repghostnet_050"]  # one per reparameterizable family
SIZE = 32


def trained_like(arch: str) -> nn.Module:
    """A stride-1-stem encoder whose BatchNorm statistics moved off their init (as after training), in eval mode."""
    torch.manual_seed(0)
    model = build_backbone(arch, stem_stride=1).train()
    with torch.no_grad():
        for _ in range(3):
            model(torch.randn(4, 3, SIZE, SIZE) * 2 + 0.5)
    return model.eval()


def convs(model: nn.Module) -> int:
    return sum(isinstance(m, nn.Conv2d) for m in model.modules())


def branches(model: nn.Module) -> int:
    """Convolutions and BatchNorms: fusion merges parallel conv branches and folds BN-only (identity) branches."""
    return sum(isinstance(m, (nn.Conv2d, nn.BatchNorm2d)) for m in model.modules())


@pytest.mark.parametrize("arch", REPARAM)
def test_fused_encoder_gives_the_same_embeddings_with_one_branch(arch):
    model = trained_like(arch)
    x = torch.randn(2, 3, SIZE, SIZE)
    fused = inference_form(model)
    assert fused is not model and is_reparameterizable(model) and not is_reparameterizable(fused)
    with torch.no_grad():
        cosine = nn.functional.cosine_similarity(model(x), fused(x))
    assert cosine.min() > 0.9999
    assert branches(fused) < branches(model)  # the parallel branches became one convolution
    assert inference_form(fused, inplace=True) is fused  # fusing twice is a no-op (timm's is not, for FastViT)


def test_plain_model_is_left_alone():
    model = build_backbone("mobilenetv3_small_050")
    assert not is_reparameterizable(model) and inference_form(model) is model and model.training


def test_checkpoint_loads_fused_and_exports_without_branches(tmp_path):
    """`load_encoder` (what export, eval and prune use) returns the fused form; its ONNX graph has one Conv per
    fused convolution and no BatchNormalization left."""
    onnx = pytest.importorskip("onnx")
    arch = "mobileone_s0"
    model = trained_like(arch)
    path = tmp_path / "last.pt"
    Checkpoint(config={}, encoder={"arch": arch, "stem_stride": 1},
               model={f"student.backbone.{k}": v for k, v in model.state_dict().items()}).save(path)
    loaded, _ = load_encoder(path)
    x = torch.randn(1, 3, SIZE, SIZE)
    with torch.no_grad():
        assert nn.functional.cosine_similarity(model(x), loaded(x)).item() > 0.9999
    torch.onnx.export(loaded, (x,), str(tmp_path / "e.onnx"), dynamo=True, verbose=False, report=False)
    ops = [node.op_type for node in onnx.load(str(tmp_path / "e.onnx")).graph.node]
    assert ops.count("Conv") == convs(loaded) < convs(model)
    assert "BatchNormalization" not in ops
