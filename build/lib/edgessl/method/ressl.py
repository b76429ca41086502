"""The ReSSL model: student (backbone + projector [+ predictor] [+ distillation head]), EMA teacher, queue,
the optional frozen-teacher distillation (spec section 5), and one training forward."""

from __future__ import annotations

import copy
from collections.abc import Sequence
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from edgessl import distributed as D
from edgessl.config import Config
from edgessl.method.batchnorm import shuffled_forward, use_split_bn, use_sync_bn, usable_splits
from edgessl.method.distill import Distillation, distillation_on
from edgessl.method.ema import ema_update
from edgessl.method.loss import entropy, infonce_loss, mean_cosine, relation_loss
from edgessl.method.queue import EmbeddingQueue
from edgessl.models.heads import mlp
from edgessl.models.registry import feature_dim


class Branch(nn.Module):
    """backbone -> projector (-> predictor, student only). The EMA covers backbone and projector.

    With a frozen teacher, the student also has a distillation head on its backbone features; it runs inside
    `forward` so that DDP, which wraps the student, all-reduces its gradients.
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


def loss_kind(infonce_weight: float) -> str:
    """The name of the loss a step uses, for the log: infonce, relation, or infonce+relation (a mixture)."""
    return {0.0: "relation", 1.0: "infonce"}.get(float(infonce_weight), "infonce+relation")


@dataclass
class StepOutput:
    """What one forward returns; tensors stay on the device (no host sync) until the engine logs them."""

    loss: torch.Tensor
    keys: torch.Tensor  # teacher embeddings of the local batch, to enqueue after the step
    pt_entropy: torch.Tensor  # entropy of the teacher's relation target (ln K = uninformative)
    key_cosine: torch.Tensor  # mean in-batch cosine of teacher embeddings (collapse/bunching monitor)
    loss_kind: str  # "infonce", "relation" or "infonce+relation" (see `loss_kind`)
    loss_ressl: torch.Tensor  # detached, for logging: `loss` = loss_ressl + teacher.weight * loss_distill
    loss_distill: torch.Tensor  # detached; 0 without a frozen teacher
    distill_keys: torch.Tensor | None  # the frozen teacher's embeddings of the local batch, to enqueue


class ReSSL(nn.Module):
    """Relational self-supervised learning with weak augmentation (spec sections 1-4)."""

    def __init__(self, cfg: Config, backbone: nn.Module, batchnorm: str, local_batch: int) -> None:
        """`batchnorm` is `cfg.ressl.batchnorm` resolved (split, shuffle, sync or plain)."""
        super().__init__()
        m, r = cfg.model, cfg.ressl
        dim = feature_dim(backbone)
        projector = mlp(dim, m.projector_hidden, m.projector_dim, m.projector_bn, m.projector_out_bn,
                        m.projector_in_norm)
        predictor = mlp(m.projector_dim, m.predictor_hidden, m.projector_dim, bn=True) if m.predictor else None
        gen = torch.Generator().manual_seed(cfg.train.seed)
        self.distill = Distillation(cfg.teacher, gen) if distillation_on(cfg.teacher) else None
        head = None if self.distill is None else mlp(dim, m.projector_hidden, self.distill.embed_dim, m.projector_bn)
        self.student = Branch(backbone, projector, predictor, head)
        self.teacher = Branch(copy.deepcopy(backbone), copy.deepcopy(projector))
        self.teacher.requires_grad_(False)
        self.queue = EmbeddingQueue(r.queue_size, m.projector_dim, generator=gen)
        self.tau_s, self.tau_t = r.tau_s, r.tau_t
        self.target_pairs = cfg.data.view_pairs if r.pair_targets == "all" else 1
        self.batchnorm = batchnorm
        if batchnorm == "split":
            use_split_bn(self.teacher, usable_splits(local_batch, r.bn_splits))
        elif batchnorm == "sync":
            use_sync_bn(self.student)
            use_sync_bn(self.teacher)

    def core_student(self) -> Branch:
        """The student Branch, whether or not the engine wrapped it in DistributedDataParallel."""
        s = self.student
        return s.module if isinstance(s, nn.parallel.DistributedDataParallel) else s

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
        each strong view with another draw's weak view of the same image (`ressl.pair_targets: all`)."""
        rows = z_t.shape[0] // self.target_pairs
        return [z_t.roll(p * rows, dims=0).repeat(views, 1) for p in range(self.target_pairs)]

    def forward(self, strong: torch.Tensor, weak: torch.Tensor, momentum: float, infonce_weight: float,
                small: Sequence[torch.Tensor] = ()) -> StepOutput:
        """Loss for one batch, averaged over the strong view and the multi-crop views `small` (each matches the
        teacher's weak-view target) and over the targets (`targets`): `infonce_weight` x InfoNCE
        + (1 - `infonce_weight`) x the relation loss. EMA update happens here, before the teacher forward
        (official order)."""
        out = self.student(strong, small)
        z_s, head_out = out if self.distill is not None else (out, None)
        z_s = F.normalize(z_s.float(), dim=1)
        with torch.no_grad():
            ema_update(self.teacher.ema_parameters(), self.core_student().ema_parameters(), momentum)
            z_t = self.teacher_embed(weak)
        queue = self.queue.embeddings
        targets = self.targets(z_t, 1 + len(small))
        loss = torch.zeros((), device=z_s.device)
        if infonce_weight < 1:
            for target in targets:
                relation, p_t = relation_loss(z_s, target, queue, self.tau_s, self.tau_t)
                loss = loss + (1 - infonce_weight) * relation / len(targets)
        else:
            with torch.no_grad():
                p_t = F.softmax(z_t @ queue.T / self.tau_t, dim=1)
        if infonce_weight > 0:
            for target in targets:
                loss = loss + infonce_weight * infonce_loss(z_s, target, queue, self.tau_s) / len(targets)
        with torch.no_grad():
            cos = mean_cosine(z_t)
        kind = loss_kind(infonce_weight)
        if self.distill is None:
            return StepOutput(loss, z_t, entropy(p_t), cos, kind, loss.detach(), torch.zeros_like(loss.detach()),
                              None)
        loss_distill, distill_keys = self.distill(head_out, weak)
        return StepOutput(loss + self.distill.weight * loss_distill, z_t, entropy(p_t), cos, kind, loss.detach(),
                          loss_distill.detach(), distill_keys)

    @torch.no_grad()
    def enqueue(self, out: StepOutput) -> None:
        """After the optimizer step: the whole global batch's teacher keys (and frozen-teacher keys), identical
        on every rank."""
        self.queue.push(D.all_gather_nograd(out.keys))
        if self.distill is not None:
            self.distill.queue.push(D.all_gather_nograd(out.distill_keys))
