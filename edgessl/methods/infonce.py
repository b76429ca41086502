"""`infonce`: weak-view-guided InfoNCE against an EMA teacher and a queue (MoCo's loss on ReSSL's views). The
student's strong view must pick the teacher's key of the same image's weak view out of the queue. The small-student
default (README ablation): it learns where the relation loss stalls on MobileNet-size students."""

from __future__ import annotations

from dataclasses import dataclass, field

import torch

from edgessl.config import bounds
from edgessl.methods.ema_teacher import EmaTeacherMethod, EmaTeacherOptions, ntxent_note
from edgessl.methods.losses import infonce_loss


@dataclass
class Options(EmaTeacherOptions):
    """The `infonce:` recipe section."""

    tau: float = field(default=0.2, metadata=bounds(0, None, lo_open=True))  # InfoNCE temperature


class InfoNCE(EmaTeacherMethod):
    """InfoNCE with the teacher key of the same image as the positive and the queue as negatives."""

    name = "infonce"
    Options = Options

    @classmethod
    def describe(cls, options: Options) -> str:
        return (f"InfoNCE against the EMA teacher's weak-view keys and a queue of {options.queue_size} "
                f"(t={options.tau:g})" + ntxent_note(options))

    def target_loss(self, z_s, z_t, targets, sched):
        loss = torch.zeros((), device=z_s.device)
        for target in targets:
            loss = loss + infonce_loss(z_s, target, self.queue.embeddings, self.options.tau) / len(targets)
        return loss, "infonce", self.relation_target(z_t)
