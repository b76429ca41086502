"""How the teacher's batch norm is kept from leaking batch identity (spec section 3).

- `split`: one process; the teacher's BN normalizes `splits` interleaved groups separately (SplitBatchNorm, as
  the official small-dataset code), and the weak batch is shuffled in-batch before the teacher sees it.
- `shuffle`: under DDP; weak images are gathered, permuted across ranks, run in slices, gathered back and
  un-permuted (MoCo's shuffle-BN).
- `sync`: batch statistics summed over all ranks in student and teacher (solo-learn's SyncBN). Implemented
  here rather than with `nn.SyncBatchNorm` because that one refuses CPU tensors, and the equivalence of N
  processes with one must be testable with gloo on CPU. `plain`: ordinary per-batch BN.

All variants patch the `forward` of existing BatchNorm modules (including timm's BatchNormAct2d), so
parameters, buffers and state-dict keys stay exactly those of the timm model.
"""

from __future__ import annotations

import types

import torch
import torch.nn.functional as F
from timm.layers import BatchNormAct2d
import torch.distributed.nn.functional as dist_fn
from torch import nn

from edgessl import distributed as D


def _finish(self: nn.Module, out: torch.Tensor) -> torch.Tensor:
    """timm's BatchNormAct2d applies dropout and activation after the normalization."""
    return self.act(self.drop(out)) if isinstance(self, BatchNormAct2d) else out


def _split_bn_forward(self: nn.BatchNorm2d, x: torch.Tensor) -> torch.Tensor:
    """BatchNorm over `self.num_splits` interleaved sub-batches, running stats averaged over them."""
    s = self.num_splits
    if not self.training or s == 1:
        return type(self).forward(self, x)
    n, c, h, w = x.shape
    rm, rv = self.running_mean.repeat(s), self.running_var.repeat(s)
    weight = self.weight.repeat(s) if self.weight is not None else None
    bias = self.bias.repeat(s) if self.bias is not None else None
    momentum = 0.1 if self.momentum is None else self.momentum
    out = F.batch_norm(x.reshape(n // s, c * s, h, w), rm, rv, weight, bias, True, momentum, self.eps)
    self.running_mean.copy_(rm.view(s, c).mean(0))
    self.running_var.copy_(rv.view(s, c).mean(0))
    return _finish(self, out.reshape(n, c, h, w))


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
    count = torch.tensor([x.numel() / x.shape[1]], device=x.device, dtype=torch.float32)
    stats = torch.cat([xf.sum(dims), (xf * xf).sum(dims), count])
    stats = dist_fn.all_reduce(stats)
    c = x.shape[1]
    n = stats[-1]
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

    With `across_ranks`, the whole global batch is permuted (one permutation from rank 0) and each rank
    runs its slice; the outputs come back in the original order on every rank.
    """
    if not across_ranks or D.world_size() == 1:
        perm = torch.randperm(x.shape[0], device=x.device)
        out = teacher(x[perm])
        return out[torch.argsort(perm)]
    local = x.shape[0]
    x_all = D.all_gather_nograd(x)
    perm = D.broadcast(torch.randperm(x_all.shape[0], device=x.device))
    r = D.rank()
    out = teacher(x_all[perm[r * local:(r + 1) * local]])
    out_all = D.all_gather_nograd(out)
    return out_all[torch.argsort(perm)][r * local:(r + 1) * local]
