"""Relational distillation from a frozen ResNet teacher (spec section 5): the teacher, its queue and the loss.

The student's distillation head is part of the student branch (`Branch.distill_head`), so it is trained, saved
and, under DDP, all-reduced with the rest of the student. This module holds what is not trained: the frozen
teacher (run on the weak view; not saved, see `FrozenTeacher`) and the FIFO queue of its embeddings (saved, so a
resumed run continues with the same queue).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from edgessl.config import DistillConfig
from edgessl.methods.losses import relation_loss
from edgessl.methods.queue import EmbeddingQueue
from edgessl.models.teacher_loading import load_teacher


def distillation_on(t: DistillConfig) -> bool:
    """A teacher is used when `distill.arch` is set and `distill.weight` > 0 (weight 0 turns distillation off)."""
    return bool(t.arch) and t.weight > 0


class Distillation(nn.Module):
    """The frozen teacher, a queue of its embeddings, and the relation loss between teacher and student head."""

    def __init__(self, t: DistillConfig, generator: torch.Generator) -> None:
        super().__init__()
        self.teacher = load_teacher(t)
        self.queue = EmbeddingQueue(t.queue_size, self.embed_dim, generator=generator)
        self.weight, self.tau_s, self.tau_t = t.weight, t.tau_s, t.tau_t

    @property
    def embed_dim(self) -> int:
        return self.teacher.source.embed_dim

    def forward(self, head_out: torch.Tensor, weak: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """The relation cross-entropy of the student head against the teacher over the teacher queue (temperatures
        `distill.tau_s`, `distill.tau_t`), and the teacher's keys of this batch, to enqueue after the step."""
        z_s = F.normalize(head_out.float(), dim=1)
        z_t = self.teacher(weak)
        loss, _ = relation_loss(z_s, z_t, self.queue.embeddings, self.tau_s, self.tau_t)
        return loss, z_t
