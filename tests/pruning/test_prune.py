"""Pruning to a MACs target: both students land within 5 % of it, keep their stem and embedding width, run at the
recipe's input size, reload through `load_encoder` and export to ONNX with outputs matching PyTorch."""

from __future__ import annotations

import itertools

import numpy as np
import pytest
import torch

from edgessl.models.encoder_loading import load_encoder
from edgessl.export import get_target
from edgessl.models import build_backbone, feature_dim
from edgessl.pruning.pipeline import prune_checkpoint
from edgessl.pruning.prune import prune_to_target
from tests.pruning.conftest import encoder_checkpoint

SIZE = 32  # the CIFAR recipes' input, stem stride 1


def quiet(line: str) -> None:
    pass


@pytest.mark.parametrize("arch", ["mobilenetv3_small_100", pytest.param("efficientnet_b0", marks=pytest.mark.slow)])
def test_half_the_macs_runs_reloads_and_exports_to_onnx(tmp_path, arch):
    ckpt = encoder_checkpoint(tmp_path / "run", f"model.arch={arch}", "model.stem_stride=1", f"data.image_size={SIZE}")
    result = prune_checkpoint(ckpt, macs=0.5, recover_epochs=0, log=quiet)
    unpruned, pruned = result.stages
    assert abs(pruned.macs / unpruned.macs - 0.5) <= 0.05 * 0.5
    assert result.checkpoint == tmp_path / "run-pruned50" / "pruned.pt"
    original, _ = load_encoder(ckpt)
    model, info = load_encoder(result.checkpoint)  # rebuilt from the registry arch + stored channel counts
    assert model.conv_stem.out_channels == original.conv_stem.out_channels  # stem kept
    assert all(m.out_channels % 4 == 0 for m in model.modules() if isinstance(m, torch.nn.Conv2d))  # --round-to 4
    assert sum(p.numel() for p in model.parameters()) < sum(p.numel() for p in original.parameters())
    x = torch.randn(2, 3, SIZE, SIZE)
    with torch.no_grad():
        out = model(x)
    assert out.shape == (2, feature_dim(original)) == (2, info["feature_dim"])  # embedding width kept

    onnx = get_target("onnx")
    path = tmp_path / "pruned.onnx"
    onnx.export(model, x[:1].numpy(), path, onnx.profile(arch), meta={})
    np.testing.assert_allclose(onnx.load(path, threads=1)(x.numpy()), out.numpy(), rtol=1e-3, atol=1e-4)


def test_params_target_and_pruned_embedding_reload(tmp_path, mnv3_checkpoint):
    result = prune_checkpoint(mnv3_checkpoint, params=0.6, recover_epochs=0, keep_embedding=False,
                              out=tmp_path / "out", log=quiet)
    assert result.stages[1].params <= 0.6 * result.stages[0].params
    model, info = load_encoder(result.checkpoint)
    assert info["feature_dim"] < 1024 and feature_dim(model) == info["feature_dim"]
    with torch.no_grad():
        assert model(torch.randn(1, 3, 16, 16)).shape == (1, info["feature_dim"])


@pytest.mark.slow
def test_taylor_and_bn_importance_reach_the_target_with_other_channels():
    views = itertools.repeat((torch.randn(8, 3, 16, 16), torch.randn(8, 3, 16, 16)))
    pruned = {}
    for criterion in ("magnitude", "taylor", "bn"):
        torch.manual_seed(0)
        model = build_backbone("mobilenetv3_small_100", stem_stride=1)
        before, after = prune_to_target(model, 16, macs=0.5, criterion=criterion, views=views, log=quiet)
        assert 0.475 <= after.macs / before.macs <= 0.5
        pruned[criterion] = model.state_dict()
    for criterion in ("taylor", "bn"):  # same seed, same shapes where the uniform ratio agrees: other channels kept
        other = pruned[criterion]
        assert any(v.shape == other[k].shape and not torch.equal(v, other[k]) for k, v in pruned["magnitude"].items())
