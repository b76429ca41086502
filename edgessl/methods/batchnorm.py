"""How the teacher's batch norm is kept from leaking batch identity (spec section 3).

- `split`: one process; the teacher's BN normalizes `splits` interleaved groups separately (SplitBatchNorm, as
  the official small-dataset code), and the weak batch is shuffled in-batch before the teacher sees it.
- `shuffle`: under DDP; the global batch of weak images is permuted across ranks and each rank runs its slice
  (MoCo's shuffle-BN); all_to_all moves only the rows that change rank, not the whole batch to every rank.
- `sync`: batch statistics summed over all ranks in student and teacher (solo-learn's SyncBN). Implemented
  here rather than with `nn.SyncBatchNorm` because that one refuses CPU tensors, and the equivalence of N
  processes with one must be testable with gloo on CPU. `plain`: ordinary per-batch BN.

All variants patch the `forward` of existing BatchNorm modules (including timm's BatchNormAct2d), so
parameters, buffers and state-dict keys stay exactly those of the timm model.
"""

from __future__ import annotations

import types
from dataclasses import dataclass

import torch
from timm.layers import BatchNormAct2d
import torch.distributed.nn.functional as dist_fn
from torch import nn

from edgessl import distributed as D


def _finish(self: nn.Module, out: torch.Tensor) -> torch.Tensor:
    """timm's BatchNormAct2d applies dropout and activation after the normalization."""
    return self.act(self.drop(out)) if isinstance(self, BatchNormAct2d) else out


def _split_bn_forward(self: nn.BatchNorm2d, x: torch.Tensor) -> torch.Tensor:
    """BatchNorm over `self.num_splits` interleaved sub-batches, running stats averaged over them.

    The groups are a view of `x` (batch split into (n / s, s)), so NHWC stays NHWC: no reshape copies."""
    s = self.num_splits
    if not self.training or s == 1:
        return type(self).forward(self, x)
    n, c, h, w = x.shape
    groups = x.unflatten(0, (n // s, s)).float()  # group j = samples j, j + s, ...; no copy for float32 input
    var, mean = torch.var_mean(groups, dim=(0, 3, 4), correction=0)  # (s, c) each
    scale = torch.rsqrt(var + self.eps)
    if self.weight is not None:
        scale = scale * self.weight
    shift = -mean * scale + (self.bias if self.bias is not None else 0)
    out = torch.addcmul(shift[None, :, :, None, None], groups, scale[None, :, :, None, None])
    with torch.no_grad():
        count = n // s * h * w
        momentum = 0.1 if self.momentum is None else self.momentum
        self.running_mean.mul_(1 - momentum).add_(mean.mean(0), alpha=momentum)
        self.running_var.mul_(1 - momentum).add_(var.mean(0) * count / max(count - 1, 1), alpha=momentum)
    return _finish(self, out.flatten(0, 1).to(x.dtype))


def _sync_bn_forward(self: nn.modules.batchnorm._BatchNorm, x: torch.Tensor) -> torch.Tensor:
    """BatchNorm with mean/var over the global batch of all ranks.

    The statistics are summed with an autograd-aware all_reduce: its backward sums the incoming gradients
    over ranks, so after DDP averages the parameter gradients they equal those of one process holding the
    whole batch (no 1/world_size error).
    """
    if not self.training or D.world_size() == 1:
        return type(self).forward(self, x)
    dims = [0] + list(range(2, x.dim()))
    shape = [1, -1] + [1] * (x.dim() - 2)
    xf = x.float()
    c = x.shape[1]
    n = x.numel() // c * D.world_size()  # every rank has the same local batch: known here, no tensor (no sync)
    stats = dist_fn.all_reduce(torch.cat([xf.sum(dims), (xf * xf).sum(dims)]))
    mean = stats[:c] / n
    var = (stats[c:2 * c] / n - mean * mean).clamp_min(0)
    with torch.no_grad():
        if self.num_batches_tracked is not None:
            self.num_batches_tracked.add_(1)
        momentum = 0.1 if self.momentum is None else self.momentum
        self.running_mean.mul_(1 - momentum).add_(mean.detach(), alpha=momentum)
        self.running_var.mul_(1 - momentum).add_(var.detach() * n / (n - 1), alpha=momentum)
    out = (xf - mean.view(shape)) * torch.rsqrt(var.view(shape) + self.eps)
    if self.weight is not None:
        out = out * self.weight.view(shape) + self.bias.view(shape)
    return _finish(self, out.to(x.dtype))


def use_split_bn(module: nn.Module, splits: int) -> None:
    """Make every BatchNorm2d of `module` a SplitBatchNorm with `splits` groups (parameters unchanged)."""
    for m in module.modules():
        if isinstance(m, nn.BatchNorm2d):
            m.num_splits = splits
            m.forward = types.MethodType(_split_bn_forward, m)


def use_sync_bn(module: nn.Module) -> None:
    """Make every BatchNorm (1d and 2d) of `module` normalize over the global batch of all ranks."""
    for m in module.modules():
        if isinstance(m, nn.modules.batchnorm._BatchNorm):
            m.forward = types.MethodType(_sync_bn_forward, m)


def usable_splits(batch: int, splits: int) -> int:
    """The largest split count <= `splits` that divides the batch (the last batch of a run can be smaller)."""
    while batch % splits:
        splits -= 1
    return splits


@torch.no_grad()
def shuffled_forward(teacher: nn.Module, x: torch.Tensor, across_ranks: bool) -> torch.Tensor:
    """Run `teacher` on a permutation of the batch and undo it, so BN groups do not match the student's.

    With `across_ranks`, the whole global batch is permuted (one permutation, drawn alike on every rank from
    `distributed.shared_generator`) and each rank runs its slice of it: `exchange_plan` says which of its images each rank sends where, one all_to_all brings every rank
    its slice and a second one returns the outputs to the images' owners (no rank holds the global batch).
    """
    if not across_ranks or D.world_size() == 1:
        perm = torch.randperm(x.shape[0], device=x.device)
        out = teacher(x[perm])
        return out[torch.argsort(perm)]
    world = D.world_size()
    perm = torch.randperm(x.shape[0] * world, generator=D.shared_generator())  # CPU, equal on every rank
    plan = exchange_plan(perm, x.shape[0], D.rank(), world, x.device)
    received = D.all_to_all(x[plan.send], plan.send_counts, plan.recv_counts)
    out = teacher(received[plan.unsort])  # this rank's slice of the permuted global batch, in permuted order
    back = D.all_to_all(out[plan.sort], plan.recv_counts, plan.send_counts)
    result = torch.empty_like(back)
    result[plan.send] = back
    return result


@dataclass
class ExchangePlan:
    """Who sends what in shuffle-BN, for one rank (`exchange_plan`)."""

    send: torch.Tensor  # local rows to send, grouped by destination rank
    send_counts: list[int]  # rows sent to each rank
    recv_counts: list[int]  # rows received from each rank
    sort: torch.Tensor  # this rank's slice of the permutation, reordered to group it by source rank
    unsort: torch.Tensor  # the inverse of `sort`: received rows -> slice order


def exchange_plan(perm: torch.Tensor, local: int, rank: int, world: int, device: torch.device | str = "cpu"
                  ) -> ExchangePlan:
    """The all_to_all plan for rank `rank` when the global batch (`world` x `local` rows, row g owned by rank
    g // local) is permuted by `perm` (on the CPU, the same on every rank) and rank d runs rows
    perm[d * local:(d + 1) * local]. Computed on the CPU, so the counts need no host-device sync; the index
    tensors go to `device` without blocking."""
    owner = perm // local
    mine = owner == rank  # positions in the permutation of this rank's rows; position // local = destination
    send = perm[mine] - rank * local
    sort = torch.argsort(owner[rank * local:(rank + 1) * local], stable=True)
    send_counts = mine.view(world, local).sum(1).tolist()
    recv_counts = torch.bincount(owner[rank * local:(rank + 1) * local], minlength=world).tolist()
    device = torch.device(device)

    def move(t: torch.Tensor) -> torch.Tensor:  # pinned + non_blocking: the copy does not wait for the GPU
        return t.pin_memory().to(device, non_blocking=True) if device.type == "cuda" else t.to(device)

    return ExchangePlan(move(send), send_counts, recv_counts, move(sort), move(torch.argsort(sort)))
