"""Label-free quantization-aware training (QAT) of a fake-quantized encoder, by self-distillation from its fp32 self.

Each target inserts fake quantization where its runtime quantizes (PT2E + LiteRT's quantizer for TFLite and, with
uint8 activations, for ONNX Runtime; NNCF for OpenVINO; see the targets' `export_qat`), then hands the
fake-quantized module to `Finetuner`, which trains it so that what is trained is what runs.

The loss needs no labels: the frozen fp32 encoder is the teacher, and the fake-quantized student matches the
relations of the teacher's embeddings to a FIFO queue of past teacher embeddings (the relation cross-entropy that
distillation and pruning recovery use, `edgessl.methods.losses.relation_loss`) plus `cosine_weight` x (1 - cosine)
to the teacher's embedding of the same image (what the on-device check measures). Student and teacher share one
temperature, so the fp32 encoder itself minimises the loss and fine-tuning pulls the int8 graph towards it;
pretraining's sharper teacher (0.04 against the student's 0.1) rewards a student sharper than the teacher, and
pushed a trained mobilenetv3_small_100's int8 TFLite away from fp32 (cosine 0.9894 after QAT vs 0.9905 PTQ; 0.9942
with one temperature). Batch norm keeps its running statistics (the student is fine-tuned in eval form): a few
hundred steps of small batches would otherwise replace them with noisier ones. Ctrl-C aborts the export like any
other interrupt: the staging folder is removed, so no half-trained artifact is left behind (artifacts finished
before it stay).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn
from tqdm import trange

from edgessl.errors import EdgeSSLError
from edgessl.methods.losses import relation_loss
from edgessl.methods.queue import EmbeddingQueue


@dataclass(frozen=True)
class QatSettings:
    """How long and how hard to fine-tune; defaults measured on 32 px CIFAR-10 encoders (README, export)."""

    steps: int
    lr: float = 5e-6  # 5e-5 lowered the int8 cosine of a trained mobilenetv3_small_100 (README)
    batch: int = 64
    pool: int = 2048  # training images (eval transform + random flip) the batches are drawn from
    cosine_weight: float = 1.0
    queue_size: int = 4096
    temperature: float = 0.04  # student and teacher alike (see the module docstring)
    seed: int = 0

    def __post_init__(self) -> None:
        if self.steps < 1:
            raise EdgeSSLError(f"--qat-steps must be >= 1; got {self.steps}")
        if self.pool < 1 or self.batch < 1:
            raise EdgeSSLError(f"QAT needs pool and batch >= 1; got pool {self.pool}, batch {self.batch}")
        if self.lr <= 0:
            raise EdgeSSLError(f"--qat-lr must be > 0; got {self.lr}")


Finetune = Callable[[nn.Module, str], None]  # (fake-quantized module, its input layout "NCHW" | "NHWC") -> trains it


class Finetuner:
    """Trains fake-quantized students against one frozen fp32 teacher on a pool of normalized NCHW images."""

    def __init__(self, teacher: nn.Module, images: np.ndarray, settings: QatSettings,
                 log: Callable[[str], None] = print) -> None:
        self.teacher, self.images, self.settings, self.log = teacher.eval(), torch.from_numpy(images), settings, log

    def _batch(self, gen: torch.Generator) -> torch.Tensor:
        """A random batch from the pool, half of it flipped left-right (the eval transform plus a flip)."""
        idx = torch.randint(0, len(self.images), (self.settings.batch,), generator=gen)
        x = self.images[idx]
        flip = torch.rand(len(x), generator=gen) < 0.5
        x[flip] = x[flip].flip(-1)
        return x

    @torch.no_grad()
    def _target(self, x: torch.Tensor) -> torch.Tensor:
        return F.normalize(self.teacher(x).flatten(1).float(), dim=1)

    def loss(self, z_s: torch.Tensor, z_t: torch.Tensor, queue: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(relation loss + cosine_weight x (1 - cosine), 1 - cosine) of L2-normalised student/teacher embeddings."""
        relation, _ = relation_loss(z_s, z_t, queue, self.settings.temperature, self.settings.temperature)
        cos = 1 - (z_s * z_t).sum(dim=1).mean()
        return relation + self.settings.cosine_weight * cos, cos

    def __call__(self, student: nn.Module, layout: str) -> None:
        """Fine-tune `student` in place for `settings.steps` steps."""
        s = self.settings
        gen = torch.Generator().manual_seed(s.seed)
        first = self._target(self.images[:s.batch])
        queue = EmbeddingQueue(max(s.queue_size // s.batch, 1) * s.batch, first.shape[1], generator=gen)
        for _ in range(queue.size // s.batch):  # start from real teacher embeddings, not noise
            queue.push(self._target(self._batch(gen)))
        params = [p for p in student.parameters() if p.requires_grad]
        opt = torch.optim.AdamW(params, lr=s.lr, weight_decay=0.0)
        sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, s.steps)
        with trange(s.steps, desc=f"QAT ({layout})", unit="step", leave=False) as bar:
            for _ in bar:
                x = self._batch(gen)
                z_t = self._target(x)
                z_s = F.normalize(student(x.permute(0, 2, 3, 1) if layout == "NHWC" else x).flatten(1).float(), dim=1)
                loss, cos = self.loss(z_s, z_t, queue.embeddings)
                opt.zero_grad(set_to_none=True)
                loss.backward()
                opt.step()
                sched.step()
                queue.push(z_t)
                bar.set_postfix(loss=f"{loss.item():.4f}", cosine=f"{1 - cos.item():.4f}")
        self.log(f"QAT: {s.steps} steps, last loss {loss.item():.4f}, batch cosine to fp32 {1 - cos.item():.4f}")
