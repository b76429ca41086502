"""`ressl`: relational self-supervised learning (spec sections 1-4), with the journal options: the student-only
predictor (`model.predictor`), an InfoNCE warm-up and a mixture of InfoNCE and the relation loss."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

import torch

from edgessl.config import bounds
from edgessl.methods.ema_teacher import EmaTeacherMethod, EmaTeacherOptions, ntxent_note
from edgessl.methods.losses import infonce_loss, relation_loss


@dataclass
class Options(EmaTeacherOptions):
    """The `ressl:` recipe section."""

    tau_s: float = field(default=0.1, metadata=bounds(0, None, lo_open=True))
    infonce_warmup_epochs: float = field(default=0.0, metadata=bounds(0))  # journal extension; 0 = off
    # after the warm-up: loss = infonce_weight x InfoNCE + (1 - infonce_weight) x relation; 0 = ReSSL's relation
    # loss alone (official), 1 = InfoNCE alone (then prefer method=infonce, which says so)
    infonce_weight: float = field(default=0.0, metadata=bounds(0, 1))
    # linear: the relation share grows from 0 after the warm-up to (1 - infonce_weight) at the last step
    infonce_weight_schedule: Literal["constant", "linear"] = "constant"
    infonce_tau: float = field(default=0.0, metadata=bounds(0))  # InfoNCE's temperature; 0 = tau_s


def loss_kind(infonce_weight: float) -> str:
    """The name of the loss a step uses, for the log: infonce, relation, or infonce+relation (a mixture)."""
    return {0.0: "relation", 1.0: "infonce"}.get(float(infonce_weight), "infonce+relation")


class ReSSL(EmaTeacherMethod):
    """infonce_weight x InfoNCE + (1 - infonce_weight) x the relation loss, InfoNCE alone during the warm-up."""

    name = "ressl"
    Options = Options

    def __init__(self, cfg, options: Options, backbone, ctx) -> None:
        super().__init__(cfg, options, backbone, ctx)
        self.tau_s = options.tau_s
        self.infonce_tau = options.infonce_tau or options.tau_s
        self.infonce_steps = round(options.infonce_warmup_epochs * ctx.steps_per_epoch)

    @classmethod
    def describe(cls, options: Options) -> str:
        w = options.infonce_weight
        after = {"relation": "the relation loss (ReSSL)", "infonce": "InfoNCE alone (infonce_weight=1)"}.get(
            loss_kind(w), f"{w:g} x InfoNCE + {1 - w:g} x the relation loss")
        if options.infonce_weight_schedule == "linear" and w < 1:
            after = f"InfoNCE handing over linearly to {after} at the last step"
        warm = options.infonce_warmup_epochs
        return (f"InfoNCE for {warm:g} epochs, then {after}" if warm else after) + ntxent_note(options)

    def schedule(self, step: int) -> dict[str, float]:
        weight = self.options.infonce_weight
        if step < self.infonce_steps:
            weight = 1.0
        elif self.options.infonce_weight_schedule == "linear":
            done = (step - self.infonce_steps + 1) / max(1, self.total_steps - self.infonce_steps)
            weight = 1.0 - (1.0 - weight) * min(1.0, done)
        return {**super().schedule(step), "infonce_weight": weight}

    def target_loss(self, z_s, z_t, targets, sched):
        weight = sched["infonce_weight"]
        queue = self.queue.embeddings
        loss = torch.zeros((), device=z_s.device)
        if weight < 1:
            for target in targets:
                relation, p_t = relation_loss(z_s, target, queue, self.tau_s, self.tau_t)
                loss = loss + (1 - weight) * relation / len(targets)
        else:
            p_t = self.relation_target(z_t)
        if weight > 0:
            for target in targets:
                loss = loss + weight * infonce_loss(z_s, target, queue, self.infonce_tau) / len(targets)
        return loss, loss_kind(weight), p_t
