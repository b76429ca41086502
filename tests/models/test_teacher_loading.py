"""The frozen ResNet teacher loads from every supported checkpoint layout, refuses mismatches in one line, and
stays frozen (no parameters, no state dict, eval mode)."""

import hashlib

import pytest
import timm
import torch
import torch.nn.functional as F
import torchvision
from torch import nn

from edgessl.config import DistillConfig
from edgessl.errors import EdgeSSLError
from edgessl.models.teacher_loading import load_teacher

X = torch.randn(4, 3, 16, 16, generator=torch.Generator().manual_seed(0))


def _cifar_torchvision_resnet18() -> nn.Module:
    """torchvision's ResNet-18 with the official CIFAR stem (3x3 stride 1, no max-pool), random weights."""
    model = torchvision.models.resnet18(num_classes=10)
    model.conv1 = nn.Conv2d(3, 64, kernel_size=3, stride=1, padding=1, bias=False)
    model.maxpool = nn.Identity()
    return model


@torch.no_grad()
def _pooled(model: nn.Module) -> torch.Tensor:
    """Reference embedding: the model's pooled features (classifier removed), eval mode, L2-normalized."""
    model.fc = nn.Identity()
    return F.normalize(model.eval()(X), dim=1)


def _teacher(path, arch: str = "resnet18", **kw) -> DistillConfig:
    return DistillConfig(arch=arch, checkpoint=str(path), **kw)


def test_plain_timm_state_dict_with_classifier_is_imagenet_stem(tmp_path):
    model = timm.create_model("resnet18", num_classes=10)
    torch.save(model.state_dict(), tmp_path / "timm.pt")
    teacher = load_teacher(_teacher(tmp_path / "timm.pt"))
    src = teacher.source
    assert (src.stem_stride, src.embedding, src.embed_dim) == (2, "pooled", 512)
    assert "2 other entries" in src.layout  # fc.weight, fc.bias
    assert src.sha256 == hashlib.sha256((tmp_path / "timm.pt").read_bytes()).hexdigest()
    assert torch.allclose(teacher(X), _pooled(model), atol=1e-5)


def test_torchvision_state_dict_under_state_dict_key_is_cifar_stem(tmp_path):
    model = _cifar_torchvision_resnet18()
    torch.save({"state_dict": model.state_dict(), "epoch": 3}, tmp_path / "tv.pt")
    teacher = load_teacher(_teacher(tmp_path / "tv.pt"))
    assert teacher.source.stem_stride == 1
    assert torch.allclose(teacher(X), _pooled(model), atol=1e-5)


@pytest.mark.parametrize("prefix", ["module.encoder_q.", "encoder_q.", "module."])
def test_official_ressl_layout_strips_the_prefix(tmp_path, prefix):
    query, momentum = _cifar_torchvision_resnet18(), _cifar_torchvision_resnet18()
    query.fc = nn.Sequential(nn.Linear(512, 64), nn.ReLU(), nn.Linear(64, 16))  # MoCo-style MLP head: dropped
    state = {prefix + k: v for k, v in query.state_dict().items()}
    if prefix != "module.":  # the momentum encoder and the queue sit beside the query encoder
        state |= {prefix.replace("encoder_q", "encoder_k") + k: v for k, v in momentum.state_dict().items()}
        state[prefix.replace("encoder_q.", "queue")] = torch.randn(16, 8)
    torch.save({"state_dict": state, "arch": "resnet18"}, tmp_path / "ressl.pt")
    teacher = load_teacher(_teacher(tmp_path / "ressl.pt"))
    assert f"prefix '{prefix}' stripped" in teacher.source.layout
    assert torch.allclose(teacher(X), _pooled(query), atol=1e-5)


@pytest.fixture(scope="module")
def edgessl_ckpt(tmp_path_factory):
    """A real `edgessl pretrain` checkpoint of a ResNet-18 (stem 1, projector 64-32) from the tiny config."""
    from edgessl.engine.trainer import Trainer
    from tests.tiny_run import tiny

    out = tmp_path_factory.mktemp("resnet18_run")
    trainer = Trainer(tiny(out, "model.arch=resnet18", "model.stem_stride=1"))
    trainer.save()
    return out / "last.pt", trainer.model.core_student()


def test_edgessl_checkpoint_uses_the_student_projector(edgessl_ckpt):
    path, student = edgessl_ckpt
    teacher = load_teacher(_teacher(path))
    src = teacher.source
    assert (src.layout, src.stem_stride, src.embedding, src.embed_dim) == ("edgessl", 1, "projector", 32)
    with torch.no_grad():
        expected = F.normalize(student.projector(student.backbone.eval()(X)), dim=1)
    assert torch.allclose(teacher(X), expected, atol=1e-5)
    assert load_teacher(_teacher(path, embedding="pooled")).source.embed_dim == 512


def test_teacher_is_frozen_and_stays_in_eval_mode(tmp_path):
    torch.save(_cifar_torchvision_resnet18().state_dict(), tmp_path / "tv.pt")
    teacher = load_teacher(_teacher(tmp_path / "tv.pt"))
    assert list(teacher.parameters()) == [] and teacher.state_dict() == {}
    assert all(not b.requires_grad for b in teacher.buffers())
    teacher.train()
    assert not any(m.training for m in teacher.modules())
    before = {k: v.clone() for k, v in teacher.named_buffers()}
    teacher(torch.randn(8, 3, 16, 16))  # BN in eval mode: running statistics do not move
    assert all(torch.equal(before[k], v) for k, v in teacher.named_buffers())


def _one_line_error(cfg: DistillConfig, *words: str) -> None:
    with pytest.raises(EdgeSSLError) as err:
        load_teacher(cfg)
    msg = str(err.value)
    assert "\n" not in msg, msg
    for w in words:
        assert w in msg, msg


def test_mismatched_architectures_list_the_first_keys(tmp_path, edgessl_ckpt):
    torch.save(timm.create_model("resnet34").state_dict(), tmp_path / "r34.pt")
    _one_line_error(_teacher(tmp_path / "r34.pt"), "does not match distill.arch=resnet18", "unexpected",
                    "backbone.layer1.2.")
    torch.save(timm.create_model("resnet50").state_dict(), tmp_path / "r50.pt")
    _one_line_error(_teacher(tmp_path / "r50.pt"), "unexpected", "wrong shape",
                    "backbone.layer1.0.conv1.weight [64, 64, 1, 1] vs [64, 64, 3, 3]")
    _one_line_error(_teacher(tmp_path / "r50.pt", arch="resnet101"), "missing", "backbone.layer3.6.")
    _one_line_error(_teacher(edgessl_ckpt[0], arch="resnet34"), "edgessl resnet18 checkpoint", "distill.arch=resnet18")


@pytest.mark.parametrize("cfg, words", [
    (DistillConfig(arch="resnet18"), ["distill.checkpoint is empty"]),
    (DistillConfig(arch="resnet18", checkpoint="nope/last.pt"),
     ["distill.checkpoint 'nope/last.pt' not found", "resnet18_teacher_cifar10.yaml"]),
    (DistillConfig(arch="resnet9000", checkpoint="x.pt"), ["unknown distill.arch"]),
])
def test_bad_teacher_settings_are_one_line_errors(cfg, words):
    _one_line_error(cfg, *words)


def test_projector_embedding_needs_a_projector_and_pickles_are_refused(tmp_path):
    torch.save(_cifar_torchvision_resnet18().state_dict(), tmp_path / "tv.pt")
    _one_line_error(_teacher(tmp_path / "tv.pt", embedding="projector"), "has no projector", "distill.embedding=pooled")
    torch.save({"state_dict": {}, "args": DistillConfig()}, tmp_path / "pickled.pt")  # arbitrary object: not weights
    _one_line_error(_teacher(tmp_path / "pickled.pt"), "is not a plain-weights checkpoint (it would run code")


def test_edgessl_projector_with_input_norm_and_output_bn(tmp_path):
    from edgessl.engine.trainer import Trainer
    from tests.tiny_run import tiny

    trainer = Trainer(tiny(tmp_path / "run", "model.arch=resnet18", "model.stem_stride=1",
                           "model.projector_out_bn=true", "model.projector_in_norm=true"))
    trainer.save()
    teacher = load_teacher(_teacher(tmp_path / "run" / "last.pt"))
    student = trainer.model.core_student().eval()
    assert teacher.source.embed_dim == 32
    with torch.no_grad():
        assert torch.allclose(teacher(X), F.normalize(student.projector(student.backbone(X)), dim=1), atol=1e-5)
