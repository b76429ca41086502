"""Two gloo processes on CPU are equivalent to one process with the same global batch (SyncBN), shuffle-BN
keeps the queues identical on every rank, and a 2-process run resumes on 1 process."""

import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest
import torch
import torch.distributed as dist
import torch.multiprocessing as mp

from edgessl.checkpoint import Checkpoint
from tests.tiny_run import tiny

STEPS, GLOBAL = 4, 16


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _batches() -> list[tuple[torch.Tensor, torch.Tensor]]:
    gen = torch.Generator().manual_seed(123)
    return [(torch.randn(GLOBAL, 3, 16, 16, generator=gen), torch.randn(GLOBAL, 3, 16, 16, generator=gen))
            for _ in range(STEPS)]


def _run_steps(trainer, rank: int, world: int) -> tuple[list[float], torch.Tensor]:
    from edgessl import distributed as D

    local = GLOBAL // world
    losses = []
    for strong, weak in _batches():
        sl = slice(rank * local, (rank + 1) * local)
        out = trainer.train_step(strong[sl], weak[sl])
        losses.append(D.all_reduce_mean(out.loss.detach()).item())
    return losses, trainer.model.queue.embeddings.clone()


def _worker(rank: int, world: int, port: int, out_dir: str, batchnorm: str) -> None:
    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port), RANK=str(rank), WORLD_SIZE=str(world),
                      LOCAL_RANK=str(rank))
    torch.set_num_threads(1)
    from edgessl.engine.trainer import Trainer

    trainer = Trainer(tiny(Path(out_dir) / "run", f"ressl.batchnorm={batchnorm}"))
    losses, queue = _run_steps(trainer, rank, world)
    queues = [torch.empty_like(queue) for _ in range(world)]
    dist.all_gather(queues, queue)
    if rank == 0:
        torch.save({"losses": losses, "queues": queues}, Path(out_dir) / "dist.pt")
    dist.destroy_process_group()


def _spawn(tmp_path, batchnorm: str) -> dict:
    mp.spawn(_worker, args=(2, _free_port(), str(tmp_path), batchnorm), nprocs=2, join=True)
    return torch.load(tmp_path / "dist.pt")


@pytest.mark.slow
def test_two_processes_equal_one_with_syncbn(tmp_path):
    from edgessl.engine.trainer import Trainer

    got = _spawn(tmp_path, "sync")
    single = Trainer(tiny(tmp_path / "single", "ressl.batchnorm=sync"))
    losses, queue = _run_steps(single, 0, 1)
    assert got["losses"] == pytest.approx(losses, rel=1e-4, abs=1e-5)
    assert torch.allclose(got["queues"][0], queue, atol=1e-4)
    assert torch.equal(got["queues"][0], got["queues"][1])


@pytest.mark.slow
def test_shuffle_bn_runs_and_queues_stay_identical(tmp_path):
    got = _spawn(tmp_path, "shuffle")
    assert all(torch.isfinite(torch.tensor(got["losses"])))
    assert torch.equal(got["queues"][0], got["queues"][1])


@pytest.mark.slow
def test_two_process_run_checkpoints_and_resumes_on_one(tmp_path):
    run = tmp_path / "run"
    args = [f"{k}" for k in ("data.format=synthetic", "data.image_size=16", "data.synthetic_train=64",
                             "data.synthetic_test=32", "data.num_workers=0", "model.projector_hidden=64",
                             "model.projector_dim=32", "method=ressl", "ressl.queue_size=64",
                             "train.batch_size=16", "knn.k=5", "train.knn_every=0", f"output_dir={run}")]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2", "-m", "edgessl",
           "pretrain", "recipes/quickstart.yaml", *args, "train.epochs=1"]
    root = Path(__file__).resolve().parents[2]
    done = subprocess.run(cmd, cwd=root, env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    assert Checkpoint.load(run / "last.pt").step == 4
    resumed = subprocess.run([sys.executable, "-m", "edgessl", "pretrain", str(run / "config.yaml"),
                              "train.epochs=2", "--resume"], cwd=root, env=env, capture_output=True, text=True,
                             timeout=300)
    assert resumed.returncode == 0, resumed.stderr[-2000:]
    assert "resuming" in resumed.stdout
    assert Checkpoint.load(run / "last.pt").step == 8


def test_world_size_must_divide_batch(tmp_path):
    from edgessl.engine.trainer import check_sizes
    from edgessl.errors import EdgeSSLError

    with pytest.raises(EdgeSSLError, match="not divisible by the world size 3"):
        check_sizes(tiny(tmp_path), 3, 1000)


def test_nccl_without_gpus_is_one_line_error(tmp_path, monkeypatch):
    from edgessl.engine.runtime import init_distributed
    from edgessl.errors import EdgeSSLError

    monkeypatch.setenv("RANK", "0"), monkeypatch.setenv("WORLD_SIZE", "1"), monkeypatch.setenv("LOCAL_RANK", "0")
    with pytest.raises(EdgeSSLError, match="dist.backend=nccl needs CUDA GPUs"):
        init_distributed(tiny(tmp_path, "dist.backend=nccl"))


AUG = ("data.batched_augment=true", "train.knn_every=0")  # augmentation on the training device's RNG


def _record_draws(rank: int, run_dir: Path, stop_at: int = 0) -> dict[int, torch.Tensor]:
    """Pretrain the tiny recipe (or resume it) recording each step's augmented views; with `stop_at`, rank 0
    sends itself SIGINT during that step (a preemption: the run saves a mid-epoch checkpoint and stops)."""
    import signal

    from edgessl.engine.trainer import Trainer

    trainer = Trainer(tiny(run_dir, *AUG))
    augment, draws = trainer.augment, {}

    def recording(images: torch.Tensor) -> tuple[torch.Tensor, ...]:
        views = augment(images)
        draws[trainer.step] = torch.cat([v.flatten() for v in views])
        if trainer.step + 1 == stop_at and rank == 0:
            os.kill(os.getpid(), signal.SIGINT)
        return views

    trainer.augment = recording
    result = trainer.fit()
    assert result.stopped_early == bool(stop_at)
    return draws


def _resume_worker(rank: int, world: int, tmp: str) -> dict:
    """On 2 processes: an unbroken run, a run stopped at step 2, and the resume of a 1-process run stopped at 2."""
    tmp = Path(tmp)
    return {"unbroken": _record_draws(rank, tmp / "u2"), "stopped": _record_draws(rank, tmp / "b21", stop_at=2),
            "resumed": _record_draws(rank, tmp / "b12")}


@pytest.mark.slow
def test_resume_across_world_sizes_draws_what_an_unbroken_run_draws(tmp_path):
    """2 -> 1 and 1 -> 2 processes, preempted mid-epoch (step 2 of 4): from the resume point on, each rank
    draws the augmentations an unbroken run of the new world size draws, and no two ranks draw alike."""
    from tests.gloo import run_gloo

    unbroken1 = _record_draws(0, tmp_path / "u1")
    stopped1 = _record_draws(0, tmp_path / "b12", stop_at=2)
    ranks = run_gloo(_resume_worker, 2, str(tmp_path))
    resumed1 = _record_draws(0, tmp_path / "b21")
    assert Checkpoint.load(tmp_path / "b21" / "last.pt").step == 8
    assert sorted(stopped1) == sorted(ranks[0]["stopped"]) == [0, 1] and sorted(resumed1) == list(range(2, 8))
    for step in range(2, 8):
        assert torch.equal(resumed1[step], unbroken1[step]), step
        for rank in (0, 1):
            assert torch.equal(ranks[rank]["resumed"][step], ranks[rank]["unbroken"][step]), (rank, step)
        assert not torch.equal(ranks[0]["unbroken"][step][:100], ranks[1]["unbroken"][step][:100])


def _nan_worker(rank: int, world: int, run_dir: str) -> str:
    """Rank 1's loss turns NaN at step 3; returns the error each rank stops with."""
    from edgessl.engine.trainer import Trainer
    from edgessl.errors import EdgeSSLError

    trainer = Trainer(tiny(run_dir, "train.knn_every=0"))
    step = trainer.train_step

    def poisoned(*views: torch.Tensor):
        out = step(*views)
        if rank == 1 and trainer.step == 3:
            out.loss = out.loss * float("nan")
        return out

    trainer.train_step = poisoned
    try:
        trainer.fit()
    except EdgeSSLError as exc:
        return str(exc)
    return "trained on"


@pytest.mark.slow
def test_nan_on_one_rank_stops_every_rank_with_the_same_message(tmp_path):
    from tests.gloo import run_gloo

    messages = run_gloo(_nan_worker, 2, str(tmp_path / "run"), timeout_s=30)  # a hang fails after 30 s
    assert messages[0] == messages[1]
    assert "loss became NaN/inf at step 3 (epoch 1)" in messages[0]


def test_pretrain_under_torchrun_leaves_the_process_group(tmp_path, monkeypatch):
    from edgessl.engine.trainer import pretrain
    from tests.gloo import free_port

    for key, value in dict(RANK="0", WORLD_SIZE="1", LOCAL_RANK="0", MASTER_ADDR="127.0.0.1",
                           MASTER_PORT=str(free_port())).items():
        monkeypatch.setenv(key, value)
    pretrain(tiny(tmp_path, "train.epochs=1", "train.knn_every=0", "train.max_steps=1", "dist.backend=gloo"))
    assert not dist.is_initialized()
