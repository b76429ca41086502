"""Device and launch rules for GPU servers, checked without a GPU (CUDA queries are monkeypatched), and the
local-rank-0-first ordering of downloads under gloo."""

import time
from pathlib import Path

import pytest
import torch

from edgessl.engine import runtime as R
from edgessl.errors import EdgeSSLError


def _gpus(monkeypatch, count: int, local_rank: int, local_world: int = 8) -> None:
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: count)
    monkeypatch.setattr(torch.backends.cudnn, "benchmark", False)  # restored after the test
    monkeypatch.setenv("LOCAL_RANK", str(local_rank))
    monkeypatch.setenv("LOCAL_WORLD_SIZE", str(local_world))


@pytest.mark.parametrize("count, local_rank, index", [(8, 3, 3), (1, 3, 0)])  # node's GPUs / one bound GPU
def test_each_rank_takes_its_own_gpu(monkeypatch, count, local_rank, index):
    _gpus(monkeypatch, count, local_rank)
    assert R.resolve_device("auto") == R.resolve_device("cuda") == torch.device("cuda", index)
    assert torch.backends.cudnn.benchmark


def test_more_ranks_than_gpus_is_one_line_error(monkeypatch):
    _gpus(monkeypatch, 2, 3)
    with pytest.raises(EdgeSSLError, match="LOCAL_RANK=3 but this process sees 2 GPUs"):
        R.resolve_device("cuda")


def test_an_explicit_gpu_index_is_refused_with_several_ranks_a_node(monkeypatch):
    _gpus(monkeypatch, 8, 3)
    with pytest.raises(EdgeSSLError, match="train.device=cuda:1 would put every process of this node on one GPU"):
        R.resolve_device("cuda:1")
    _gpus(monkeypatch, 8, 0, local_world=1)
    assert R.resolve_device("cuda:1") == torch.device("cuda", 1)


def test_step_seeds_depend_on_step_and_rank_only():
    draws = {}
    for step, rank in [(5, 0), (5, 1), (6, 0), (5, 0)]:
        R.seed_step(0, step, rank)
        draws.setdefault((step, rank), []).append(torch.rand(4))
    assert torch.equal(*draws[(5, 0)])
    assert not torch.equal(draws[(5, 0)][0], draws[(5, 1)][0])
    assert not torch.equal(draws[(5, 0)][0], draws[(6, 0)][0])


def _first_worker(rank: int, world: int, marker: str) -> bool:
    """Local rank 0 writes a file slowly inside the guard; returns whether the file existed on entering it."""
    with R.local_main_first():
        found = Path(marker).exists()
        if rank == 0:
            time.sleep(0.5)
            Path(marker).write_text("downloaded")
    return found


@pytest.mark.slow
def test_local_rank_zero_downloads_before_the_others(tmp_path):
    from tests.gloo import run_gloo

    assert run_gloo(_first_worker, 2, str(tmp_path / "marker")) == [False, True]


_STRIDED_1X1 = """
import torch, torch.nn as nn
from edgessl.config import Config
from edgessl.engine.runtime import apply_layout
torch.set_num_threads(1)
model = nn.Sequential(nn.Conv2d(3, 16, 3, 2, 1), nn.Conv2d(3, 16, 1, 2, 0))  # MobileOne's stem: 3x3 + 1x1 scale
cfg = Config()
cfg.train.channels_last = {channels_last}
model = apply_layout(model, cfg, torch.device("cpu"))
for _ in range(10):
    x = torch.randn(16, 3, 224, 224).contiguous(memory_format=torch.channels_last)
    (model[0](x) + model[1](x)).square().sum().backward()
print(model[0].weight.is_contiguous(memory_format=torch.channels_last), model[1].weight.is_contiguous())
"""


def test_channels_last_keeps_strided_1x1_convs_on_few_channels_in_nchw():
    """PyTorch 2.14's CPU backward of a 1x1 stride-2 conv on 3 channels at 224 px in channels_last crashes the
    process (heap corruption; MobileOne's and FastViT's stem): apply_layout leaves that conv NCHW, the rest NHWC.
    In a child process, so a regression fails this test instead of killing pytest."""
    import subprocess
    import sys

    proc = subprocess.run([sys.executable, "-c", _STRIDED_1X1.format(channels_last=True)], capture_output=True,
                          text=True, timeout=300)
    assert proc.returncode == 0, f"crashed: return code {proc.returncode} {proc.stderr[-300:]}"
    assert proc.stdout.split() == ["True", "True"]  # the 3x3 conv NHWC, the strided 1x1 conv NCHW
