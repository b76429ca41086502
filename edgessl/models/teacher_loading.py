"""The frozen teacher of relational distillation (spec section 5), built from a local checkpoint: a ResNet, or any
registry arch trained by edgessl (e.g. the unpruned encoder that `edgessl prune` recovers from).

Checkpoint layouts read (always with `weights_only=True`):
- edgessl: a `last.pt` written by `edgessl pretrain`; the student's backbone and projector
  (`model["student.backbone.*"]`, `model["student.projector.*"]`), the projector shaped by its stored recipe.
- a plain timm or torchvision ResNet state dict, alone or under `state_dict`/`model`. The two libraries share
  key names; the classifier (`fc.*`, torchvision's and timm's alike) is dropped.
- the official ReSSL / MoCo layout: keys under `module.encoder_q.`, `encoder_q.` or `module.`; the prefix is
  stripped and keys outside it (momentum encoder, queue, ...) are ignored.

The stem follows the teacher, not the student's recipe: an edgessl checkpoint's own recipe says it; for a ResNet
state dict, a 7x7 `conv1` is the ImageNet stem (stride 2 and max-pool), a 3x3 one the CIFAR stem (stride 1, no
max-pool), so the teacher is rebuilt exactly as it was trained.
The embedding is the projector output when the checkpoint has a projector (edgessl) and `distill.embedding` is
auto or projector; otherwise the pooled backbone features.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from edgessl.checkpoint import Checkpoint
from edgessl.config import DistillConfig
from edgessl.errors import EdgeSSLError
from edgessl.file_hash import sha256_of
from edgessl.models.heads import mlp
from edgessl.models.registry import ARCHS, build_backbone, check_arch, feature_dim
from edgessl.safe_load import load_checkpoint

RESNETS = tuple(name for name, arch in ARCHS.items() if arch.stem == "resnet")
PREFIXES = ("module.encoder_q.", "encoder_q.", "module.")  # official ReSSL/MoCo, then plain DataParallel


@dataclass(frozen=True)
class TeacherSource:
    """Where the teacher came from; stored in the student's checkpoint instead of the teacher's weights."""

    arch: str
    checkpoint: str
    sha256: str
    layout: str
    stem_stride: int
    embedding: str  # projector | pooled
    embed_dim: int

    def record(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    def describe(self) -> str:
        return (f"teacher: {self.arch} (stem stride {self.stem_stride}) from {self.checkpoint} [{self.layout}, "
                f"sha256 {self.sha256[:12]}], embedding {self.embedding} {self.embed_dim}-d, frozen, eval mode")


class FrozenTeacher(nn.Module):
    """backbone (-> projector) -> L2-normalized embedding; never trained, never saved, always in eval mode.

    `load_teacher` builds it, loads the weights, then `freeze()` turns every parameter and buffer into a
    non-persistent buffer: they still move with `.to()`, but `parameters()` is empty (no optimizer or DDP can
    pick them up, no gradient exists) and `state_dict()` leaves them out (the student checkpoint keeps
    only `source`).
    """

    def __init__(self, backbone: nn.Module, projector: nn.Module | None, source: TeacherSource) -> None:
        super().__init__()
        self.backbone = backbone
        self.projector = projector
        self.source = source

    def freeze(self) -> "FrozenTeacher":
        """Make every tensor a non-persistent buffer (after the weights are loaded) and switch to eval mode."""
        for module in self.modules():
            for name, tensor in [*module.named_parameters(recurse=False), *module.named_buffers(recurse=False)]:
                delattr(module, name)
                module.register_buffer(name, tensor.detach(), persistent=False)
            if isinstance(module, nn.modules.batchnorm._BatchNorm):
                # Eval-mode BN normalizes with its running statistics either way. Without tracking, BN also stops
                # adding `num_batches_tracked` to a state dict without version metadata (as the engine saves
                # it) while the student's checkpoint is loaded, where it would be an unexpected key.
                module.track_running_stats = False
        return self.eval()

    def train(self, mode: bool = True) -> "FrozenTeacher":
        """Stay in eval mode (BN running statistics) when the engine puts the whole model in train mode."""
        return super().train(False)

    @torch.no_grad()
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.backbone(x)
        z = self.projector(h) if self.projector is not None else h
        return F.normalize(z.float(), dim=1)


def _check_teacher_config(t: DistillConfig) -> Path:
    """The teacher checkpoint's path, or a one-line error saying which `distill.*` key to fix."""
    check_arch(t.arch, "distill.arch")
    if not t.checkpoint:
        raise EdgeSSLError(f"distill.arch={t.arch} is set but distill.checkpoint is empty; set "
                           "distill.checkpoint=<a ResNet .pt>, or distill.arch='' to train without a teacher")
    path = Path(t.checkpoint)
    if not path.is_file():
        raise EdgeSSLError(f"distill.checkpoint '{path}' not found; train the teacher first (e.g. `edgessl pretrain "
                           "recipes/resnet18_teacher_cifar10.yaml`) or set distill.checkpoint=<path to a ResNet .pt>")
    return path


def _read_weights(path: Path, arch: str) -> tuple[dict[str, torch.Tensor], str, dict[str, Any] | None]:
    """The teacher's tensors keyed `backbone.*` (and `projector.*`), the layout's name, and for an edgessl
    checkpoint its recipe's `model` section (which shapes the projector) with the timm options its encoder was built
    with."""
    ckpt = load_checkpoint(path)
    if not isinstance(ckpt, dict):
        raise EdgeSSLError(f"distill.checkpoint '{path}' holds a {type(ckpt).__name__}, not a state dict; "
                           "pass an edgessl last.pt or a ResNet state dict")
    if Checkpoint.is_edgessl(ckpt):
        edgessl = Checkpoint.from_dict(ckpt, path)
        trained = edgessl.encoder["arch"]
        if trained != arch:
            raise EdgeSSLError(f"distill.checkpoint '{path}' is an edgessl {trained} checkpoint but distill.arch is "
                               f"{arch}; set distill.arch={trained}")
        keep = ("student.backbone.", "student.projector.")
        state = {k[len("student."):]: v for k, v in edgessl.model.items() if k.startswith(keep)}
        return state, "edgessl", {**edgessl.config["model"], "timm_kwargs": edgessl.encoder.get("timm_kwargs", {})}
    if check_arch(arch).stem != "resnet":
        raise EdgeSSLError(f"distill.checkpoint '{path}' is not an edgessl checkpoint: plain state dicts are read for "
                           f"ResNets only ({', '.join(RESNETS)}); a {arch} teacher must be an edgessl last.pt")
    state = next((ckpt[k] for k in ("state_dict", "model") if isinstance(ckpt.get(k), dict)), ckpt)
    prefix = next((p for p in PREFIXES if any(str(k).startswith(p) for k in state)), "")
    weights = {k[len(prefix):]: v for k, v in state.items()
               if str(k).startswith(prefix) and torch.is_tensor(v) and not k[len(prefix):].startswith("fc.")}
    layout = "ResNet state dict" + (f", prefix '{prefix}' stripped" if prefix else "")
    if len(weights) < len(state):
        layout += f", {len(state) - len(weights)} other entries (classifier, momentum encoder, ...) ignored"
    return {f"backbone.{k}": v for k, v in weights.items()}, layout, None


def _load_exact(teacher: nn.Module, state: dict[str, torch.Tensor], t: DistillConfig, path: Path) -> None:
    """Load `state` into `teacher`, refusing any missing, unexpected or wrongly shaped key with one line."""
    expected = teacher.state_dict()
    missing = [k for k in expected if k not in state and not k.endswith("num_batches_tracked")]
    unexpected = [k for k in state if k not in expected]
    shapes = [f"{k} {list(state[k].shape)} vs {list(v.shape)}" for k, v in expected.items()
              if k in state and state[k].shape != v.shape]
    problems = [f"{len(keys)} {what} ({', '.join(keys[:3])}{', ...' if len(keys) > 3 else ''})"
                for what, keys in (("missing", missing), ("unexpected", unexpected), ("wrong shape", shapes)) if keys]
    if problems:
        raise EdgeSSLError(f"distill.checkpoint '{path}' does not match distill.arch={t.arch}: {'; '.join(problems)}; "
                           "set distill.arch to the architecture the checkpoint was trained with")
    teacher.load_state_dict(state, strict=False)  # only `num_batches_tracked` may be absent (older files)


def load_teacher(t: DistillConfig) -> FrozenTeacher:
    """The frozen teacher `distill.*` describes, with its weights checked key by key against `distill.arch`."""
    path = _check_teacher_config(t)
    state, layout, projector_cfg = _read_weights(path, t.arch)
    has_projector = any(k.startswith("projector.") for k in state)
    if t.embedding == "projector" and not has_projector:
        raise EdgeSSLError(f"distill.embedding=projector but distill.checkpoint '{path}' ({layout}) has no projector; "
                           "use distill.embedding=pooled or auto")
    use_projector = has_projector and t.embedding != "pooled"
    if not use_projector:
        state = {k: v for k, v in state.items() if not k.startswith("projector.")}
    conv1 = state.get("backbone.conv1.weight")
    stem_stride = 1 if conv1 is not None and conv1.shape[-1] == 3 else 2
    stem_stride = projector_cfg["stem_stride"] if projector_cfg else stem_stride
    backbone = build_backbone(t.arch, stem_stride, projector_cfg["timm_kwargs"] if projector_cfg else None)
    projector = None
    if use_projector:
        m = projector_cfg
        projector = mlp(feature_dim(backbone), m["projector_hidden"], m["projector_dim"], m["projector_bn"],
                        m.get("projector_out_bn", False), m.get("projector_in_norm", False))
    embed_dim = projector_cfg["projector_dim"] if projector is not None else feature_dim(backbone)
    source = TeacherSource(t.arch, str(path), sha256_of(path), layout, stem_stride,
                           "projector" if use_projector else "pooled", embed_dim)
    teacher = FrozenTeacher(backbone, projector, source)
    _load_exact(teacher, state, t, path)
    return teacher.freeze()
