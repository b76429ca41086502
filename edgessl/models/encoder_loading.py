"""A trained encoder out of an edgessl checkpoint: the backbone (pruned structure applied) and, for `edgessl eval`,
`export`, `prune` and `report`, the recipe stored with it. The file is read once."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from torch import nn

from edgessl.checkpoint import Checkpoint, checkpoint_path
from edgessl.config import Config, config_from_dict
from edgessl.errors import EdgeSSLError
from edgessl.models.registry import build_backbone
from edgessl.models.reparam import inference_form
from edgessl.models.structure import apply_structure


def load_encoder(ckpt: Checkpoint | str | Path, branch: str = "student") -> tuple[nn.Module, dict[str, Any]]:
    """The trained backbone of a checkpoint (or its path), in eval mode on CPU (multi-branch blocks fused), and its
    `encoder` info."""
    ckpt = ckpt if isinstance(ckpt, Checkpoint) else Checkpoint.load(ckpt)
    info = dict(ckpt.encoder)
    model = build_backbone(info["arch"], info["stem_stride"], info.get("timm_kwargs", {}))
    if info.get("pruned"):  # a pruned encoder (pruned in fused form): re-shape the model to the stored channels
        model = inference_form(model, inplace=True)
        apply_structure(model, info["pruned"], info["arch"])
    state = ckpt.encoder_state(branch)
    expected = model.state_dict()
    wrong = next((k for k, v in state.items() if k in expected and v.shape != expected[k].shape), None)
    if wrong is not None:
        raise EdgeSSLError(f"'{ckpt.path}': encoder weights do not fit encoder.arch={info['arch']} (first mismatch "
                           f"'{wrong}': {tuple(state[wrong].shape)} stored, {tuple(expected[wrong].shape)} expected); "
                           "was encoder.arch edited? use the checkpoint as `edgessl pretrain` wrote it")
    missing, unexpected = model.load_state_dict(state, strict=False)
    if missing or unexpected:
        keys = ", ".join((missing or unexpected)[:3])
        raise EdgeSSLError(f"'{ckpt.path}': encoder weights do not match {info['arch']} ({keys} ...)")
    return inference_form(model, inplace=True).eval(), info  # reparameterizable: fused for eval/export/pruning


@dataclass
class LoadedEncoder:
    """A trained backbone (eval mode, CPU), its checkpoint `encoder` info, the recipe and the checkpoint's epoch."""

    model: nn.Module
    info: dict[str, Any]
    cfg: Config
    epoch: int
    path: Path


def load_trained_encoder(path: str | Path, overrides: Sequence[str] = (), branch: str = "student") -> LoadedEncoder:
    """Load a checkpoint's backbone and its stored recipe with `key=value` overrides applied (e.g. data.root=...)."""
    path = checkpoint_path(path)
    ckpt = Checkpoint.load(path)
    cfg = config_from_dict(ckpt.config, list(overrides), source=f"{path} config")
    model, info = load_encoder(ckpt, branch)
    return LoadedEncoder(model, info, cfg, ckpt.epoch, path)
