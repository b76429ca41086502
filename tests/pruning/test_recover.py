"""Recovery: a tiny run of the pruned student against the frozen unpruned encoder completes, writes a checkpoint
that reloads pruned, resumes instead of redoing work, and the generalised teacher loader reads any registry arch
from an edgessl checkpoint."""

from __future__ import annotations

import pytest
import torch

from edgessl.config import DistillConfig, load_config
from edgessl.checkpoint import Checkpoint
from edgessl.models.encoder_loading import load_encoder
from edgessl.engine.trainer import Trainer
from edgessl.errors import EdgeSSLError
from edgessl.models.teacher_loading import load_teacher
from edgessl.pruning.pipeline import prune_checkpoint
from edgessl.pruning.recover import recovery_config
from tests.tiny_run import tiny


def quiet(line: str) -> None:
    pass


def test_recovery_defaults_yield_to_user_overrides(tmp_path):
    recipe = tiny(tmp_path).to_dict()
    ckpt = tmp_path / "last.pt"
    default = recovery_config(recipe, ckpt, tmp_path / "pruned.pt", tmp_path / "out", 3)
    assert (default.distill.weight, default.distill.embedding, default.train.epochs) == (1.0, "pooled", 3)
    chosen = recovery_config(recipe, ckpt, tmp_path / "pruned.pt", tmp_path / "out", 3, ["distill.weight=0.5"])
    assert chosen.distill.weight == 0.5 and chosen.distill.checkpoint == str(ckpt.resolve())


@pytest.mark.slow
def test_tiny_recovery_writes_a_pruned_checkpoint_and_resumes(tmp_path, mnv3_checkpoint):
    out = tmp_path / "out"
    result = prune_checkpoint(mnv3_checkpoint, macs=0.5, recover_epochs=1, out=out, log=quiet)
    assert [s.name for s in result.stages] == ["unpruned", "pruned", "recovered (1 epoch)"]
    assert result.checkpoint == out / "last.pt" and (out / "prune.json").exists()
    ckpt, pruned = Checkpoint.load(out / "last.pt"), Checkpoint.load(out / "pruned.pt")
    assert ckpt.step == 4 and ckpt.encoder["pruned"] == pruned.encoder["pruned"]
    assert (ckpt.distill["arch"], ckpt.distill["embedding"]) == ("mobilenetv3_small_100", "pooled")
    model, _ = load_encoder(out / "last.pt")
    start, _ = load_encoder(out / "pruned.pt")
    x = torch.randn(2, 3, 16, 16)
    with torch.no_grad():
        assert model(x).shape == (2, 1024) and not torch.allclose(model(x), start(x))  # trained from the pruned one
    assert load_config(out / "config.yaml").model.init_checkpoint == str((out / "pruned.pt").resolve())

    again = prune_checkpoint(mnv3_checkpoint, macs=0.5, recover_epochs=1, out=out, log=quiet)  # reuse + resume
    assert again.stages == result.stages and Checkpoint.load(out / "last.pt").step == 4
    with pytest.raises(EdgeSSLError, match="pruned with other settings"):
        prune_checkpoint(mnv3_checkpoint, macs=0.4, recover_epochs=1, out=out, log=quiet)


def test_teacher_loader_reads_a_mobilenet_edgessl_checkpoint(tmp_path, mnv3_checkpoint):
    teacher = load_teacher(DistillConfig(arch="mobilenetv3_small_100", checkpoint=str(mnv3_checkpoint),
                                         embedding="pooled"))
    assert (teacher.source.stem_stride, teacher.source.embed_dim) == (1, 1024)  # the stem from its recipe
    student, _ = load_encoder(mnv3_checkpoint)
    x = torch.randn(2, 3, 16, 16)
    with torch.no_grad():
        assert torch.allclose(teacher(x), torch.nn.functional.normalize(student(x), dim=1), atol=1e-5)
    torch.save(student.state_dict(), tmp_path / "plain.pt")
    with pytest.raises(EdgeSSLError, match="plain state dicts are read for ResNets only"):
        load_teacher(DistillConfig(arch="mobilenetv3_small_100", checkpoint=str(tmp_path / "plain.pt")))


def test_init_checkpoint_must_match_the_recipe_arch(tmp_path, mnv3_checkpoint):
    with pytest.raises(EdgeSSLError, match="set model.arch and model.stem_stride to match"):
        Trainer(tiny(tmp_path, f"model.init_checkpoint={mnv3_checkpoint}"))  # stem stride 2 vs 1
