"""The EMA teacher update (spec section 1), fused with `torch._foreach_*`."""

from __future__ import annotations

import math

import torch


@torch.no_grad()
def ema_update(teacher: list[torch.Tensor], student: list[torch.Tensor], momentum: float) -> None:
    """theta_t = m * theta_t + (1 - m) * theta_s over matching parameter lists.

    Parameters only: BN running statistics stay the teacher's own (it runs in train mode).
    """
    torch._foreach_mul_(teacher, momentum)
    torch._foreach_add_(teacher, [p.detach() for p in student], alpha=1.0 - momentum)


def ema_momentum(base: float, schedule: str, step: int, total_steps: int) -> float:
    """Constant (official ReSSL) or cosine from `base` to 1 over training (BYOL)."""
    if schedule == "constant" or total_steps <= 1:
        return base
    return 1.0 - (1.0 - base) * (math.cos(math.pi * step / total_steps) + 1.0) / 2.0
