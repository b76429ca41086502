"""`simclr` (peer): two strong views per image, lightly's NT-Xent loss with in-batch negatives (SimCLR v1).

The backbone and projector are the recipe's (`model.*`), as for every method, so peers differ from `ressl` and
`infonce` only in the loss. With `data.view_pairs` > 1 each pair is its own SimCLR batch (the loss averaged over
pairs): views of one image in another pair would otherwise be counted as negatives.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import torch

from edgessl.config import bounds
from edgessl.methods.base import Method, StepOutput
from edgessl.methods.lightly_import import require_lightly


@dataclass
class Options:
    """The `simclr:` recipe section."""

    temperature: float = field(default=0.5, metadata=bounds(0, None, lo_open=True))


class SimCLR(Method):
    """NT-Xent between the two strong views' projections."""

    name = "simclr"
    Options = Options
    second_view = "strong"

    def __init__(self, cfg, options: Options, backbone, ctx) -> None:
        lightly = require_lightly(self.name)
        super().__init__()
        self.build_branches(cfg, backbone, ema_teacher=False)
        self.criterion = lightly.loss.NTXentLoss(temperature=options.temperature, gather_distributed=ctx.world > 1)
        self.pairs = cfg.data.view_pairs

    @classmethod
    def describe(cls, options: Options) -> str:
        return f"NT-Xent (lightly) between two strong views, in-batch negatives (t={options.temperature:g})"

    def loss_step(self, views: Sequence[torch.Tensor], sched: dict[str, float]
                  ) -> tuple[StepOutput, torch.Tensor | None]:
        z, head = self.embed(views[0], views[1:2])  # both views in one pass: one forward for DDP
        za, zb = z.chunk(2)
        loss = sum(self.criterion(a, b) for a, b in zip(za.chunk(self.pairs), zb.chunk(self.pairs))) / self.pairs
        return StepOutput(loss, "ntxent"), head
