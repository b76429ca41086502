"""`moco_v2` (peer): a query encoder on one strong view, its momentum (EMA) copy on the other, and lightly's NT-Xent
loss with a memory bank of past keys as the negatives (MoCo v2: MLP projector, strong augmentation, t=0.2)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import torch

from edgessl.config import Config, bounds
from edgessl.methods.base import Method, StepOutput, check_queue
from edgessl.methods.ema import ema_update
from edgessl.methods.lightly_import import require_lightly
from edgessl.methods.losses import mean_cosine


@dataclass
class Options:
    """The `moco_v2:` recipe section."""

    temperature: float = field(default=0.2, metadata=bounds(0, None, lo_open=True))
    queue_size: int = field(default=4096, metadata=bounds(1))
    ema_momentum: float = field(default=0.99, metadata=bounds(0, 1))


class MoCoV2(Method):
    """InfoNCE of the query against its key, the memory bank as negatives; keys enqueued by the loss."""

    name = "moco_v2"
    Options = Options
    second_view = "strong"
    metric_names = ("momentum", "key_cosine")

    def __init__(self, cfg, options: Options, backbone, ctx) -> None:
        lightly = require_lightly(self.name)
        super().__init__()
        self.build_branches(cfg, backbone, ema_teacher=True)
        self.criterion = lightly.loss.NTXentLoss(temperature=options.temperature, gather_distributed=ctx.world > 1,
                                                 memory_bank_size=(options.queue_size, cfg.model.projector_dim))
        bank = self.criterion.memory_bank
        for name in ("bank", "bank_ptr"):  # saved with the model, so a resumed run continues with the same keys
            tensor = getattr(bank, name)
            delattr(bank, name)
            bank.register_buffer(name, tensor)
        self.momentum = options.ema_momentum

    @classmethod
    def check(cls, cfg: Config, options: Options) -> None:
        super().check(cfg, options)
        check_queue(f"{cls.name}.queue_size", options.queue_size, cfg)

    @classmethod
    def describe(cls, options: Options) -> str:
        return (f"InfoNCE (lightly NT-Xent, memory bank {options.queue_size}) of a query against its momentum "
                f"encoder's key of another strong view (t={options.temperature:g}, m={options.ema_momentum:g})")

    def schedule(self, step: int) -> dict[str, float]:
        return {"momentum": self.momentum}

    def loss_step(self, views: Sequence[torch.Tensor], sched: dict[str, float]
                  ) -> tuple[StepOutput, torch.Tensor | None]:
        q, head = self.embed(views[0])
        with torch.no_grad():
            ema_update(self.teacher.ema_parameters(), self.core_student().ema_parameters(), sched["momentum"])
            k = self.teacher(views[1]).float()
        loss = self.criterion(q, k)
        with torch.no_grad():
            metrics = {"momentum": torch.tensor(sched["momentum"], device=loss.device),
                       "key_cosine": mean_cosine(torch.nn.functional.normalize(k, dim=1))}
        return StepOutput(loss, "infonce", metrics), head
