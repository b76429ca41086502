"""`byol` (peer): an online network with lightly's BYOL prediction head regresses an EMA target network's projection
of the other strong view (lightly's negative cosine similarity, symmetrized); no negatives, no queue."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Literal

import torch

from edgessl.config import bounds
from edgessl.methods.base import Method, StepOutput
from edgessl.methods.ema import ema_momentum, ema_update
from edgessl.methods.lightly_import import require_lightly


@dataclass
class Options:
    """The `byol:` recipe section."""

    ema_momentum: float = field(default=0.99, metadata=bounds(0, 1))  # base; cosine -> 1 over training
    ema_schedule: Literal["constant", "cosine"] = "cosine"
    predictor_hidden: int = field(default=512, metadata=bounds(1))


class BYOL(Method):
    """0.5 x (-cos(p(a), t(b)) - cos(p(b), t(a)))."""

    name = "byol"
    Options = Options
    second_view = "strong"
    metric_names = ("momentum",)

    def __init__(self, cfg, options: Options, backbone, ctx) -> None:
        lightly = require_lightly(self.name)
        super().__init__()
        out = cfg.model.projector_dim
        self.build_branches(cfg, backbone, ema_teacher=True, predictor=lambda: lightly.models.modules.BYOLPredictionHead(
            out, options.predictor_hidden, out))
        self.criterion = lightly.loss.NegativeCosineSimilarity()
        self.options, self.total_steps = options, ctx.total_steps

    @classmethod
    def describe(cls, options: Options) -> str:
        return (f"negative cosine (lightly) of the online prediction to the EMA target's projection of the other "
                f"strong view, symmetrized (m={options.ema_momentum:g} {options.ema_schedule})")

    def schedule(self, step: int) -> dict[str, float]:
        o = self.options
        return {"momentum": ema_momentum(o.ema_momentum, o.ema_schedule, step, self.total_steps)}

    def loss_step(self, views: Sequence[torch.Tensor], sched: dict[str, float]
                  ) -> tuple[StepOutput, torch.Tensor | None]:
        p, head = self.embed(views[0], views[1:2])  # both views in one pass: one forward for DDP
        with torch.no_grad():
            ema_update(self.teacher.ema_parameters(), self.core_student().ema_parameters(), sched["momentum"])
            t_a, t_b = (self.teacher(v).float() for v in views[:2])
        p_a, p_b = p.chunk(2)
        loss = 0.5 * (self.criterion(p_a, t_b) + self.criterion(p_b, t_a))
        return StepOutput(loss, "negative_cosine", {"momentum": torch.tensor(sched["momentum"],
                                                                            device=loss.device)}), head
