"""Methods built directly around a tiny backbone, for unit tests of their losses, EMA and queues."""

import pytest
import torch
from torch import nn

from edgessl.config import load_config
from edgessl.methods import Context, resolve

BATCH = 4


class TinyBackbone(nn.Module):
    """conv -> BN -> global mean: (N, 3, H, W) -> (N, 8); `num_features` as timm models have it."""

    num_features = 8

    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv2d(3, 8, 3)
        self.bn = nn.BatchNorm2d(8)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.bn(self.conv(x)).mean((2, 3))


def build(method: str, *overrides: str, total_steps: int = 10, steps_per_epoch: int = 5):
    """The method `method` with a 16-8 projector, batch 4 and a queue of 8, plus `overrides`."""
    torch.manual_seed(0)
    cfg = load_config(None, [f"method={method}", "model.projector_hidden=16", "model.projector_dim=8",
                             f"train.batch_size={BATCH}", *overrides])
    cls, options = resolve(cfg)
    ctx = Context(1, BATCH * cfg.data.view_pairs, total_steps, steps_per_epoch)
    return cls(cfg, options, TinyBackbone(), ctx)


def views(rows: int = BATCH, n: int = 2, seed: int = 1) -> list[torch.Tensor]:
    gen = torch.Generator().manual_seed(seed)
    return [torch.randn(rows, 3, 6, 6, generator=gen) for _ in range(n)]


def ema_moved(before: list[torch.Tensor], student: list[torch.Tensor], teacher: list[torch.Tensor],
              m: float) -> bool:
    """The teacher is m x its old weights + (1 - m) x the student's (the student before its optimizer step)."""
    return all(torch.allclose(t, m * b + (1 - m) * s, atol=1e-6) for b, s, t in zip(before, student, teacher))


@pytest.fixture
def make():
    return build
