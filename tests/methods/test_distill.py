"""Relational distillation in the training loop: the teacher is frozen, outside the optimizer and the student's
checkpoint; total loss = ReSSL + weight * distill; its queue is FIFO and sized like the main one; under DDP the
distillation head is all-reduced and the teacher queue is identical on every rank."""

import hashlib
import os
from pathlib import Path

import pytest
import torch
import torch.distributed as dist
import torch.multiprocessing as mp

from edgessl.config import load_config
from edgessl.checkpoint import Checkpoint
from edgessl.engine.trainer import Trainer, pretrain
from edgessl.errors import EdgeSSLError
from edgessl.models.registry import build_backbone
from tests.engine.test_distributed import GLOBAL, _batches, _free_port
from tests.tiny_run import tiny

RECIPES = sorted((Path(__file__).resolve().parents[2] / "recipes").glob("*.yaml"))


@pytest.fixture
def teacher_ckpt(tmp_path) -> Path:
    """A plain state dict of a ResNet-18 with the CIFAR stem (stride 1), which keeps 16 px maps at 2x2."""
    torch.manual_seed(1)
    path = tmp_path / "teacher.pt"
    torch.save(build_backbone("resnet18", stem_stride=1).state_dict(), path)
    return path


def _cfg(run_dir: Path, teacher: Path, *extra: str):
    return tiny(run_dir, "distill.arch=resnet18", f"distill.checkpoint={teacher}", "distill.queue_size=64", *extra)


def _steps(trainer: Trainer, n: int) -> list:
    gen = torch.Generator().manual_seed(5)
    return [trainer.train_step(torch.randn(16, 3, 16, 16, generator=gen), torch.randn(16, 3, 16, 16, generator=gen))
            for _ in range(n)]


def test_teacher_is_frozen_untrained_and_not_saved(tmp_path, teacher_ckpt):
    trainer = Trainer(_cfg(tmp_path / "run", teacher_ckpt))
    teacher = trainer.model.distill.teacher
    before = {k: v.clone() for k, v in teacher.named_buffers()}
    trainer.model.train()  # what the engine does every epoch
    _steps(trainer, 2)
    assert not any(m.training for m in teacher.modules())
    assert list(teacher.parameters()) == [] and all(not b.requires_grad and b.grad is None for b in teacher.buffers())
    assert all(torch.equal(before[k], v) for k, v in teacher.named_buffers())  # weights and BN statistics
    opt_params = {id(p) for g in trainer.optimizer.param_groups for p in g["params"]}
    head = trainer.model.core_student().distill_head
    assert {id(p) for p in head.parameters()} <= opt_params and all(p.grad is not None for p in head.parameters())
    assert not opt_params & {id(t) for t in teacher.buffers()}
    trainer.save()
    ckpt = Checkpoint.load(tmp_path / "run" / "last.pt")
    assert not any(k.startswith("distill.teacher") for k in ckpt.model)
    assert {"distill.queue.embeddings", "student.distill_head.0.weight"} <= ckpt.model.keys()
    assert ckpt.distill["checkpoint"] == str(teacher_ckpt)
    assert ckpt.distill["sha256"] == hashlib.sha256(teacher_ckpt.read_bytes()).hexdigest()


def test_total_loss_is_ressl_plus_weighted_distill_and_teacher_queue_is_fifo(tmp_path, teacher_ckpt):
    trainer = Trainer(_cfg(tmp_path, teacher_ckpt, "distill.weight=0.5"))
    queue = trainer.model.distill.queue
    old = queue.embeddings.clone()
    out = _steps(trainer, 1)[0]
    loss_ressl, loss_distill = out.metrics["loss_ressl"], out.metrics["loss_distill"]
    assert out.loss.item() == pytest.approx(loss_ressl.item() + 0.5 * loss_distill.item(), rel=1e-6)
    assert loss_distill.item() > 0
    keys = out.pending["distill"]
    assert keys.shape == (16, 512)  # pooled ResNet-18 features
    assert torch.equal(queue.embeddings[:16], keys) and queue.ptr.item() == 16
    assert torch.equal(queue.embeddings[16:], old[16:])


def test_distillation_is_an_engine_feature_a_peer_method_uses_too(tmp_path, teacher_ckpt):
    trainer = Trainer(_cfg(tmp_path, teacher_ckpt, "method=simclr", "distill.weight=0.5"))
    assert trainer.model.columns() == ("loss_simclr", "loss_distill")
    out = _steps(trainer, 1)[0]
    expected = out.metrics["loss_simclr"] + 0.5 * out.metrics["loss_distill"]
    assert out.loss.item() == pytest.approx(expected.item(), rel=1e-6) and trainer.model.distill.queue.ptr.item() == 16


def test_weight_zero_turns_distillation_off(tmp_path):
    trainer = Trainer(tiny(tmp_path, "distill.arch=resnet18", "distill.checkpoint=not/read.pt", "distill.weight=0"))
    assert trainer.model.distill is None and trainer.model.core_student().distill_head is None
    out = _steps(trainer, 1)[0]
    assert "loss_distill" not in out.metrics and "loss_distill" not in trainer.model.columns()


@pytest.mark.parametrize("extra, words", [
    (["distill.queue_size=40"], "distill.queue_size=40 is not a multiple of the global batch"),
    (["distill.checkpoint=runs/missing/last.pt"], r"distill.checkpoint 'runs/missing/last.pt' not found; train the"),
])
def test_bad_teacher_setups_are_one_line_errors_at_start(tmp_path, teacher_ckpt, extra, words):
    cfg = _cfg(tmp_path, teacher_ckpt, *extra)  # the recipe itself loads fine
    with pytest.raises(EdgeSSLError, match=words) as err:
        Trainer(cfg)
    assert "\n" not in str(err.value)


@pytest.mark.parametrize("recipe", [r for r in RECIPES if "distill" in r.name], ids=lambda p: p.name)
def test_distill_recipes_have_a_teacher_and_a_valid_queue(recipe):
    cfg = load_config(recipe)
    assert cfg.distill.arch.startswith("resnet") and cfg.distill.checkpoint and cfg.distill.weight > 0
    assert cfg.distill.queue_size % cfg.train.batch_size == 0


@pytest.mark.slow
def test_pretrain_logs_both_losses_and_resume_checks_the_teacher_hash(tmp_path, teacher_ckpt):
    cfg = _cfg(tmp_path / "run", teacher_ckpt, "train.epochs=1", "train.knn_every=0", "distill.weight=2")
    pretrain(cfg)
    rows = [r.split(",") for r in (tmp_path / "run" / "metrics.csv").read_text().splitlines()]
    col = {name: i for i, name in enumerate(rows[0])}
    for r in [r for r in rows[1:] if r[col["loss"]]]:  # the last row holds only the final kNN
        total, ressl, distill = (float(r[col[k]]) for k in ("loss", "loss_ressl", "loss_distill"))
        assert total == pytest.approx(ressl + 2 * distill, rel=1e-4)
    assert Trainer(_cfg(tmp_path / "run", teacher_ckpt, "train.epochs=2", "train.knn_every=0",
                        "distill.weight=2")).step == 4  # same teacher: resumes
    torch.save(build_backbone("resnet18", stem_stride=1).state_dict(), teacher_ckpt)  # other weights, same path
    with pytest.raises(EdgeSSLError, match="the distillation teacher checkpoint changed"):
        Trainer(_cfg(tmp_path / "run", teacher_ckpt, "train.epochs=2", "train.knn_every=0", "distill.weight=2"))


def _worker(rank: int, world: int, port: int, out_dir: str, teacher: str) -> None:
    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port), RANK=str(rank), WORLD_SIZE=str(world),
                      LOCAL_RANK=str(rank))
    torch.set_num_threads(1)
    trainer = Trainer(_cfg(Path(out_dir) / "run", Path(teacher)))
    local = GLOBAL // world
    for strong, weak in _batches()[:2]:
        sl = slice(rank * local, (rank + 1) * local)
        trainer.train_step(strong[sl], weak[sl])
    head = torch.cat([p.detach().flatten() for p in trainer.model.core_student().distill_head.parameters()])
    state = torch.cat([trainer.model.distill.queue.embeddings.flatten(), head])
    gathered = [torch.empty_like(state) for _ in range(world)]
    dist.all_gather(gathered, state)
    if rank == 0:
        torch.save(gathered, Path(out_dir) / "gathered.pt")
    dist.destroy_process_group()


@pytest.mark.slow
def test_ddp_keeps_teacher_queue_and_distill_head_identical_on_every_rank(tmp_path, teacher_ckpt):
    mp.spawn(_worker, args=(2, _free_port(), str(tmp_path), str(teacher_ckpt)), nprocs=2, join=True)
    a, b = torch.load(tmp_path / "gathered.pt")
    assert torch.equal(a, b)
