"""Where a run executes: torch.distributed initialisation, the device, threads, seeds and autocast."""

from __future__ import annotations

import contextlib
import os
import random
from collections.abc import Iterator
from datetime import timedelta

import numpy as np
import torch
import torch.distributed as dist
import torch.nn as nn

from edgessl import distributed as D
from edgessl.config import Config
from edgessl.errors import EdgeSSLError


def local_gpu_index() -> int:
    """This process's GPU: LOCAL_RANK when it sees the node's GPUs, 0 when the cluster binds one GPU per process."""
    local_rank, visible = int(os.environ.get("LOCAL_RANK", 0)), torch.cuda.device_count()
    if visible == 1:
        return 0
    if local_rank < visible:
        return local_rank
    raise EdgeSSLError(f"LOCAL_RANK={local_rank} but this process sees {visible} GPUs; start at most {visible} "
                       f"processes per node (--nproc {visible}) or make one GPU visible to each")


def init_distributed(cfg: Config) -> bool:
    """Join the process group when launched by torchrun (env:// rendezvous); True if this call created it (the
    caller then closes it with `close_distributed`), False when not distributed or already joined."""
    if not D.launched_by_torchrun() or D.is_dist():
        return False
    backend = cfg.dist.backend
    if backend == "auto":
        backend = "nccl" if torch.cuda.is_available() and not cfg.train.device.startswith("cpu") else "gloo"
    if backend == "nccl" and not torch.cuda.is_available():
        raise EdgeSSLError("dist.backend=nccl needs CUDA GPUs and none is visible; use dist.backend=gloo on CPU")
    device_id = None
    if backend == "nccl":  # bind the group to this rank's GPU: the communicator forms at once, on the right GPU
        device_id = torch.device("cuda", local_gpu_index())
        torch.cuda.set_device(device_id)
    dist.init_process_group(backend=backend, timeout=timedelta(minutes=30), device_id=device_id)
    return True


def close_distributed() -> None:
    """Leave the process group (at the end of a run that created it), so NCCL shuts down cleanly."""
    if D.is_dist():
        dist.destroy_process_group()


def resolve_device(spec: str) -> torch.device:
    """`train.device`: auto (this rank's GPU if any, else CPU), cpu, cuda, cuda:N or mps; a CUDA device also gets
    `cudnn.benchmark` (the input sizes are fixed, so the fastest convolution algorithms are picked once)."""
    if spec == "auto":
        spec = "cuda" if torch.cuda.is_available() else "cpu"
    try:
        device = torch.device(spec)
    except RuntimeError:
        raise EdgeSSLError(f"train.device '{spec}' is not a device; use auto, cpu, cuda, cuda:N or mps") from None
    if device.type == "cuda":
        if not torch.cuda.is_available():
            raise EdgeSSLError(f"train.device={spec} but no CUDA GPU is visible; use train.device=cpu or auto")
        if device.index is not None and int(os.environ.get("LOCAL_WORLD_SIZE", 1)) > 1:
            raise EdgeSSLError(f"train.device={spec} would put every process of this node on one GPU; use "
                               f"train.device=cuda or auto (each process takes its own)")
        if device.index is None:
            device = torch.device("cuda", local_gpu_index())
        torch.backends.cudnn.benchmark = True
    if device.type == "mps" and not torch.backends.mps.is_available():
        raise EdgeSSLError("train.device=mps but MPS is not available; use train.device=cpu or auto")
    return device


@contextlib.contextmanager
def local_main_first(enabled: bool = True) -> Iterator[None]:
    """Under torchrun, local rank 0 of each node runs the body first (e.g. a dataset download) and the other
    ranks after it, so they find the files instead of all downloading them at once."""
    if not enabled or D.world_size() == 1:
        yield
        return
    first = int(os.environ.get("LOCAL_RANK", 0)) == 0
    if not first:
        D.barrier()
    yield
    if first:
        D.barrier()


def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)


def memory_format(cfg: Config) -> torch.memory_format:
    """The model's and inputs' layout: NHWC (`train.channels_last`, 1.5-2.5x faster on CPU) or NCHW."""
    return torch.channels_last if cfg.train.channels_last else torch.contiguous_format


def apply_layout(model: nn.Module, cfg: Config, device: torch.device) -> nn.Module:
    """`model` on `device` in the training layout. On CPU in NHWC, the strided 1x1 convolutions on few channels
    stay NCHW (`keep_nchw`): PyTorch 2.14's CPU backward of such a convolution in channels_last corrupts the heap
    (a 1x1 stride-2 conv on 3 channels at 224 px; MobileOne's and FastViT's stem scale branch)."""
    model = model.to(device, memory_format=memory_format(cfg))
    if cfg.train.channels_last and device.type == "cpu":
        keep_nchw(model)
    return model


def _contiguous_input(module: nn.Module, args: tuple) -> tuple:
    return (args[0].contiguous(),) + args[1:]


def keep_nchw(model: nn.Module, max_channels: int = 15) -> None:
    """Put every strided 1x1 `Conv2d` with at most `max_channels` input channels (the crashing case; 16 ran clean)
    back to NCHW, weight and input. Their cost is negligible (a few MACs per output pixel)."""
    for m in model.modules():
        if isinstance(m, nn.Conv2d) and m.kernel_size == (1, 1) and m.stride != (1, 1) and m.in_channels <= max_channels:
            m.weight.data = m.weight.data.clone(memory_format=torch.contiguous_format)  # 1x1: .contiguous() is a no-op
            m.register_forward_pre_hook(_contiguous_input)


def check_amp(amp: str, device: torch.device) -> None:
    if amp == "fp16" and device.type != "cuda":
        raise EdgeSSLError(f"train.amp=fp16 needs a CUDA GPU (device is {device}); use train.amp=bf16 or none")


def autocast(amp: str, device: torch.device) -> contextlib.AbstractContextManager:
    """bf16 autocast on any device, fp16 on CUDA (with a GradScaler), or nothing."""
    if amp == "none":
        return contextlib.nullcontext()
    dtype = torch.bfloat16 if amp == "bf16" else torch.float16
    return torch.autocast(device_type=device.type, dtype=dtype)


def epoch_seed(seed: int, epoch: int, rank: int) -> int:
    """Each (epoch, rank) gets its own seed (the loader's generator), so a run resumed at an epoch boundary
    replays it exactly."""
    return (seed * 1_000_003 + epoch * 1_009 + rank) % 2**31


def seed_step(seed: int, step: int, rank: int) -> None:
    """Seed torch's CPU and CUDA generators for one training step of one rank (batched augmentation, teacher
    shuffles). The draws of a step depend only on (seed, step, rank), so a run resumed mid-epoch draws exactly
    what an unbroken run of its world size would, whatever the world size it was saved at, and no two ranks
    draw alike; the shared generator (`distributed.shared_generator`) gets the same seed on every rank. Seeding
    is host-side only (no device sync)."""
    torch.manual_seed((seed * 1_000_003 + step * 7_919 + rank * 104_729 + 1) % 2**63)
    D.seed_shared((seed * 1_000_003 + step * 7_919 + 2) % 2**63)
