"""SGD with weight-decay groups, and the per-step lr schedule (linear warm-up, then cosine to 0)."""

from __future__ import annotations

import math

import torch
from torch import nn

from edgessl.config import OptimConfig


def scaled_lr(cfg: OptimConfig, global_batch: int) -> float:
    """Linear scaling rule: lr = optim.lr * global_batch / optim.base_batch."""
    return cfg.lr * global_batch / cfg.base_batch


def build_optimizer(module: nn.Module, cfg: OptimConfig) -> torch.optim.SGD:
    """SGD over trainable parameters; BN weights and biases (1-d tensors) get no weight decay if asked."""
    decay, no_decay = [], []
    for p in module.parameters():
        if p.requires_grad:
            (no_decay if cfg.exclude_bn_bias and p.ndim <= 1 else decay).append(p)
    groups = [{"params": decay, "weight_decay": cfg.weight_decay},
              {"params": no_decay, "weight_decay": 0.0}]
    return torch.optim.SGD([g for g in groups if g["params"]], lr=cfg.lr, momentum=cfg.momentum)


def lr_at(step: int, total_steps: int, warmup_steps: int, peak: float) -> float:
    """Linear warm-up from ~0 to `peak` over `warmup_steps`, then cosine decay to 0 at `total_steps`."""
    if step < warmup_steps:
        return peak * (step + 1) / warmup_steps
    progress = (step - warmup_steps) / max(total_steps - warmup_steps, 1)
    return peak * 0.5 * (1.0 + math.cos(math.pi * min(progress, 1.0)))


def set_lr(optimizer: torch.optim.Optimizer, lr: float) -> None:
    for group in optimizer.param_groups:
        group["lr"] = lr
