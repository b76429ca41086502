"""What every method is: a module that owns its heads, its loss, its EMA pairs and its metrics, behind one interface
the engine drives without knowing which method it is.

Engine-level features every method gets here: the frozen-teacher distillation (`distill:`, spec section 5) on the
student's backbone features of the first view, view pairs (more rows per step; a method that mixes rows, like
SimCLR, splits them by pair), and multi-crop where the method says it can use it (`check`, else a one-line error).
"""

from __future__ import annotations

import copy
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, ClassVar

import torch
from torch import nn

from edgessl import distributed as D
from edgessl.config import Config
from edgessl.errors import EdgeSSLError
from edgessl.methods.distill import Distillation, distillation_on
from edgessl.models.heads import mlp
from edgessl.models.registry import feature_dim


@dataclass(frozen=True)
class Context:
    """What a method needs to know about the run besides the recipe."""

    world: int  # processes
    local_rows: int  # rows of one view per process and step (local batch x data.view_pairs)
    total_steps: int
    steps_per_epoch: int


@dataclass
class StepOutput:
    """One forward's result; tensors stay on the device (no host sync) until the engine logs them."""

    loss: torch.Tensor  # what is back-propagated
    loss_kind: str  # the loss that trained this step, for the log (e.g. "relation", "infonce", "ntxent")
    metrics: dict[str, torch.Tensor] = field(default_factory=dict)  # detached scalars, averaged and logged
    pending: dict[str, torch.Tensor] = field(default_factory=dict)  # keys to enqueue after the optimizer step


class Branch(nn.Module):
    """backbone -> projector (-> predictor, student only). The EMA covers backbone and projector.

    With a frozen distillation teacher, the student also has a distillation head on its backbone features; it runs
    inside `forward` so that DDP, which wraps the student, all-reduces its gradients.
    """

    def __init__(self, backbone: nn.Module, projector: nn.Module, predictor: nn.Module | None = None,
                 distill_head: nn.Module | None = None) -> None:
        super().__init__()
        self.backbone = backbone
        self.projector = projector
        self.predictor = predictor
        self.distill_head = distill_head

    def forward(self, x: torch.Tensor, small: Sequence[torch.Tensor] = ()
                ) -> torch.Tensor | tuple[torch.Tensor, torch.Tensor]:
        """The embeddings of `x` and then of the multi-crop views `small` (all of one size: one backbone pass),
        stacked (B * (1 + len(small)), D); with a distillation head, the pair (embeddings, distillation head
        output of `x`). One call, so DDP sees a single forward per step."""
        h = self.backbone(x)
        hs = torch.cat([h, self.backbone(torch.cat(list(small)))]) if small else h
        z = self.projector(hs)
        z = self.predictor(z) if self.predictor is not None else z
        return z if self.distill_head is None else (z, self.distill_head(h))

    def ema_parameters(self) -> list[nn.Parameter]:
        return [*self.backbone.parameters(), *self.projector.parameters()]


def projector(cfg: Config, dim: int) -> nn.Module:
    """The recipe's projector (`model.projector_*`): every method gets the same one, BN options included."""
    m = cfg.model
    return mlp(dim, m.projector_hidden, m.projector_dim, m.projector_bn, m.projector_out_bn, m.projector_in_norm)


class Method(nn.Module):
    """Base of every method. A subclass sets `name`, `Options` (its recipe section's dataclass), `second_view`,
    `multi_crop`, and implements `describe`, `loss_step` and, if it has queues, `push`."""

    name: ClassVar[str]
    Options: ClassVar[type]
    # the data's second view: "weak" (ReSSL's teacher view; `data.teacher_view` applies) or "strong" (two strong views)
    second_view: ClassVar[str] = "weak"
    multi_crop: ClassVar[bool] = False  # can the student use `data.small_crops` views?
    metric_names: ClassVar[tuple[str, ...]] = ()  # what `loss_step` returns in `metrics`, in column order

    student: Branch
    distill: Distillation | None

    @classmethod
    def describe(cls, options: Any) -> str:
        """One line naming the loss that trains, e.g. for the start-up line and the model card."""
        raise NotImplementedError

    @classmethod
    def check(cls, cfg: Config, options: Any) -> None:
        """Refuse recipe settings this method cannot use, with a one-line error."""
        if cfg.data.small_crops and not cls.multi_crop:
            raise EdgeSSLError(f"method={cls.name} does not use multi-crop views; set data.small_crops=0 "
                               "(multi-crop works with ressl and infonce)")

    def build_distill(self, cfg: Config, dim: int, generator: torch.Generator) -> nn.Module | None:
        """With `distill:` on: the frozen teacher and its queue (`self.distill`) and the student's head for it."""
        self.distill = Distillation(cfg.distill, generator) if distillation_on(cfg.distill) else None
        if self.distill is None:
            return None
        m = cfg.model
        return mlp(dim, m.projector_hidden, self.distill.embed_dim, m.projector_bn)

    def build_branches(self, cfg: Config, backbone: nn.Module, ema_teacher: bool,
                       predictor: Callable[[], nn.Module | None] = lambda: None) -> torch.Generator:
        """The student (backbone, the recipe's projector, `predictor()`, a distillation head when `distill:` is on)
        and, with `ema_teacher`, its EMA copy without predictor. Returns the seeded generator for the method's
        queues. (This build order is what pins a run's weights to its seed.)"""
        dim = feature_dim(backbone)
        proj = projector(cfg, dim)
        pred = predictor()
        gen = torch.Generator().manual_seed(cfg.train.seed)
        self.student = Branch(backbone, proj, pred, self.build_distill(cfg, dim, gen))
        if ema_teacher:
            self.teacher = Branch(copy.deepcopy(backbone), copy.deepcopy(proj))
            self.teacher.requires_grad_(False)
        return gen

    def core_student(self) -> Branch:
        """The student Branch, whether or not the engine wrapped it in DistributedDataParallel."""
        s = self.student
        return s.module if isinstance(s, nn.parallel.DistributedDataParallel) else s

    def schedule(self, step: int) -> dict[str, float]:
        """Per-step hyper-parameters (EMA momentum, loss mixing) for `forward`; computed outside it so a
        compiled forward sees plain numbers."""
        return {}

    def embed(self, x: torch.Tensor, small: Sequence[torch.Tensor] = ()) -> tuple[torch.Tensor, torch.Tensor | None]:
        """The student's float32 embeddings (not normalized) and, with distillation, its distillation head output."""
        out = self.student(x, small)
        z, head = out if self.distill is not None else (out, None)
        return z.float(), head

    def loss_step(self, views: Sequence[torch.Tensor], sched: dict[str, float]
                  ) -> tuple[StepOutput, torch.Tensor | None]:
        """The method's loss on (first, second, *small) views, and the distillation head's output (or None)."""
        raise NotImplementedError

    def forward(self, views: Sequence[torch.Tensor], sched: dict[str, float]) -> StepOutput:
        """One training forward: the method's loss plus, with distillation, `distill.weight` x the distillation loss
        of the student head against the frozen teacher on the second view."""
        out, head = self.loss_step(views, sched)
        if self.distill is None:
            return out
        loss_distill, keys = self.distill(head, views[1])
        out.metrics = {f"loss_{self.name}": out.loss.detach(), **out.metrics, "loss_distill": loss_distill.detach()}
        out.pending["distill"] = keys
        out.loss = out.loss + self.distill.weight * loss_distill
        return out

    def columns(self) -> tuple[str, ...]:
        """The metric columns this run logs."""
        extra = (f"loss_{self.name}", "loss_distill") if self.distill is not None else ()
        return (*extra, *self.metric_names)

    @torch.no_grad()
    def after_step(self, out: StepOutput) -> None:
        """After the optimizer step: enqueue the whole global batch's keys (identical on every rank)."""
        if self.distill is not None:
            self.distill.queue.push(D.all_gather_nograd(out.pending["distill"]))
        self.push(out)

    def push(self, out: StepOutput) -> None:
        """Enqueue the method's own keys; nothing for queue-free methods."""



def check_queue(key: str, size: int, cfg: Config) -> None:
    """A queue takes whole steps of keys (global batch x view pairs), so a push never wraps inside."""
    b, pairs = cfg.train.batch_size, cfg.data.view_pairs
    per_step = b * pairs
    if size % per_step:
        unit = f"the global batch train.batch_size={b}" if pairs == 1 else \
            f"the keys enqueued per step (train.batch_size={b} x data.view_pairs={pairs} = {per_step})"
        raise EdgeSSLError(f"{key}={size} is not a multiple of {unit}; "
                           f"use e.g. {key}={max(per_step, size // per_step * per_step)}")
