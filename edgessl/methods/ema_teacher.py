"""What `ressl` and `infonce` share (spec sections 1-4): a student, an EMA teacher on the weak view, a FIFO queue
of past teacher keys, the batch-norm tricks against batch-identity leaks, and cross-pair targets. A subclass only
says which loss compares the student's embeddings with the teacher's keys (`target_loss`)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Literal

import torch
import torch.nn.functional as F
from torch import nn

from edgessl import distributed as D
from edgessl.config import Config, bounds
from edgessl.errors import EdgeSSLError
from edgessl.methods.base import Context, Method, StepOutput, check_queue
from edgessl.methods.batchnorm import shuffled_forward, use_split_bn, use_sync_bn, usable_splits
from edgessl.methods.ema import ema_momentum, ema_update
from edgessl.methods.losses import entropy, mean_cosine, strong_pair_ntxent
from edgessl.methods.queue import EmbeddingQueue
from edgessl.models.heads import mlp


@dataclass
class EmaTeacherOptions:
    """The queue, EMA teacher and BN options of `ressl` and `infonce`."""

    # the teacher distribution's temperature: ressl's relation target; infonce only monitors it (pt_entropy)
    tau_t: float = field(default=0.04, metadata=bounds(0, None, lo_open=True))
    queue_size: int = field(default=4096, metadata=bounds(1))
    ema_momentum: float = field(default=0.99, metadata=bounds(0, 1))
    ema_schedule: Literal["constant", "cosine"] = "constant"  # cosine: m -> 1 over training (BYOL style)
    # with data.view_pairs > 1, which teacher keys a strong view matches: its own pair's weak view (own), or every
    # pair's weak view of the same image, the loss averaged over them (all: DINO-style cross-view targets)
    pair_targets: Literal["own", "all"] = "own"
    # How BN is kept from leaking batch identity (spec section 3): split (teacher SplitBN + in-batch shuffle),
    # shuffle (teacher shuffle-BN across ranks), sync (SyncBN in student and teacher), plain;
    # auto = split on one process, shuffle under DDP.
    batchnorm: Literal["auto", "split", "shuffle", "sync", "plain"] = "auto"
    bn_splits: int = field(default=8, metadata=bounds(1))
    # weight of an added NT-Xent among the student's strong views of one image across the view pairs (SimCLR's
    # in-batch negatives, per process); 0 = off; needs data.view_pairs >= 2
    ntxent_weight: float = field(default=0.0, metadata=bounds(0))
    ntxent_tau: float = field(default=0.1, metadata=bounds(0, None, lo_open=True))


def ntxent_note(options: EmaTeacherOptions) -> str:
    """The describe() suffix naming the added strong-view NT-Xent, or ""."""
    w = options.ntxent_weight
    return f" + {w:g} x NT-Xent among the student's strong views (t={options.ntxent_tau:g})" if w else ""


class EmaTeacherMethod(Method):
    """Student (backbone + projector [+ predictor] [+ distillation head]), EMA teacher, queue, one forward."""

    multi_crop = True
    metric_names = ("momentum", "pt_entropy", "key_cosine")

    def __init__(self, cfg: Config, options: EmaTeacherOptions, backbone: nn.Module, ctx: Context) -> None:
        super().__init__()
        m = cfg.model
        gen = self.build_branches(cfg, backbone, ema_teacher=True, predictor=lambda: mlp(
            m.projector_dim, m.predictor_hidden, m.projector_dim, bn=True) if m.predictor else None)
        self.queue = EmbeddingQueue(options.queue_size, m.projector_dim, generator=gen)
        self.options, self.total_steps, self.tau_t = options, ctx.total_steps, options.tau_t
        self.target_pairs = cfg.data.view_pairs if options.pair_targets == "all" else 1
        self.pairs = cfg.data.view_pairs
        if options.ntxent_weight:
            self.metric_names = (*self.metric_names, "loss_ntxent")
        self.batchnorm = options.batchnorm
        if self.batchnorm == "auto":
            self.batchnorm = "shuffle" if ctx.world > 1 else "split"
        if self.batchnorm == "split":
            use_split_bn(self.teacher, usable_splits(ctx.local_rows, options.bn_splits))
        elif self.batchnorm == "sync":
            use_sync_bn(self.student)
            use_sync_bn(self.teacher)

    @classmethod
    def check(cls, cfg: Config, options: EmaTeacherOptions) -> None:
        super().check(cfg, options)
        check_queue(f"{cls.name}.queue_size", options.queue_size, cfg)
        if options.ntxent_weight and cfg.data.view_pairs < 2:
            raise EdgeSSLError(f"{cls.name}.ntxent_weight={options.ntxent_weight:g} needs two strong views of an "
                               "image: set data.view_pairs=2 (or more), or the weight to 0")

    def schedule(self, step: int) -> dict[str, float]:
        o = self.options
        return {"momentum": ema_momentum(o.ema_momentum, o.ema_schedule, step, self.total_steps)}

    @torch.no_grad()
    def teacher_embed(self, weak: torch.Tensor) -> torch.Tensor:
        if self.batchnorm in ("split", "shuffle"):
            z = shuffled_forward(self.teacher, weak, across_ranks=self.batchnorm == "shuffle")
        else:
            z = self.teacher(weak)
        return F.normalize(z.float(), dim=1)

    def targets(self, z_t: torch.Tensor, views: int) -> list[torch.Tensor]:
        """The teacher keys each of the `views` student views per row matches, one (rows, D) tensor per target.

        Rows are draw-major over the view pairs (`merge_view_pairs`), so rolling the keys by one draw's rows pairs
        each strong view with another draw's weak view of the same image (`pair_targets: all`)."""
        rows = z_t.shape[0] // self.target_pairs
        return [z_t.roll(p * rows, dims=0).repeat(views, 1) for p in range(self.target_pairs)]

    def target_loss(self, z_s: torch.Tensor, z_t: torch.Tensor, targets: list[torch.Tensor],
                    sched: dict[str, float]) -> tuple[torch.Tensor, str, torch.Tensor]:
        """(loss, loss kind, the teacher's relation distribution p_t for the `pt_entropy` monitor)."""
        raise NotImplementedError

    @torch.no_grad()
    def relation_target(self, z_t: torch.Tensor) -> torch.Tensor:
        """The teacher's distribution over the queue, p_t = softmax(z_t q / tau_t) (monitored as `pt_entropy`)."""
        with torch.autocast(z_t.device.type, enabled=False):  # float32 under the step's autocast
            return F.softmax(z_t.float() @ self.queue.embeddings.float().T / self.tau_t, dim=1)

    def loss_step(self, views: Sequence[torch.Tensor], sched: dict[str, float]
                  ) -> tuple[StepOutput, torch.Tensor | None]:
        """The loss averaged over the strong view and the multi-crop views (each matches the teacher's weak-view
        target) and over the targets (`targets`). EMA update before the teacher forward (official order)."""
        strong, weak, *small = views
        z_s, head = self.embed(strong, small)
        z_s = F.normalize(z_s, dim=1)
        with torch.no_grad():
            ema_update(self.teacher.ema_parameters(), self.core_student().ema_parameters(), sched["momentum"])
            z_t = self.teacher_embed(weak)
        loss, kind, p_t = self.target_loss(z_s, z_t, self.targets(z_t, 1 + len(small)), sched)
        with torch.no_grad():
            metrics = {"momentum": torch.tensor(sched["momentum"], device=loss.device), "pt_entropy": entropy(p_t),
                       "key_cosine": mean_cosine(z_t)}
        if self.options.ntxent_weight:  # the strong views' rows only, not the multi-crop views'
            ntxent = strong_pair_ntxent(z_s[:len(strong)], self.pairs, self.options.ntxent_tau)
            loss = loss + self.options.ntxent_weight * ntxent
            kind += "+ntxent"
            metrics["loss_ntxent"] = ntxent.detach()
        return StepOutput(loss, kind, metrics, {"keys": z_t}), head

    @torch.no_grad()
    def push(self, out: StepOutput) -> None:
        self.queue.push(D.all_gather_nograd(out.pending["keys"]))
