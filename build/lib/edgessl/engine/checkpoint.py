"""Checkpoints: written atomically, loaded safely (`weights_only=True`), and the encoder read back out.

Layout of an edgessl checkpoint (a dict):
- `edgessl`: format version (int); `config`: the resolved recipe (dict)
- `epoch`: finished epochs; `step`: optimizer steps so far; `epoch_step`: steps into the current epoch
- `encoder`: {arch, stem_stride, image_size, feature_dim, mean, std} -- what an exporter needs; a pruned
  encoder also has `pruned`: its per-layer channel counts (`edgessl.pruning.structure`), applied on load
- `model`: the ReSSL module's state dict (`student.backbone.*`, `student.projector.*`, `teacher.*`, `queue`, ...)
- `teacher`: with distillation, the frozen teacher's arch, checkpoint path, sha256 and embedding (never its weights)
- `optimizer`, `scaler`, `rng`, `metrics`
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path
from typing import Any

import torch
from torch import nn

from edgessl.errors import EdgeSSLError
from edgessl.safe_load import load_checkpoint

FORMAT_VERSION = 1


def save_atomic(obj: Any, path: str | Path) -> None:
    """`torch.save` to a temp file in the same folder, fsync, then rename over `path`."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as fh:
            torch.save(obj, fh)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def load_edgessl_checkpoint(path: str | Path) -> dict[str, Any]:
    """Load an edgessl checkpoint; refuse other files with a one-line error."""
    ckpt = load_checkpoint(path)
    if not isinstance(ckpt, dict) or "edgessl" not in ckpt or "encoder" not in ckpt:
        raise EdgeSSLError(f"'{path}' is not an edgessl checkpoint (no 'edgessl'/'encoder' entries); "
                           "pass a last.pt written by `edgessl pretrain`")
    return ckpt


def encoder_state(model_state: dict[str, torch.Tensor], branch: str = "student") -> dict[str, torch.Tensor]:
    """The backbone weights of one branch (`student` or `teacher`) from a ReSSL state dict."""
    prefix = f"{branch}.backbone."
    return {k[len(prefix):]: v for k, v in model_state.items() if k.startswith(prefix)}


def load_encoder(path: str | Path, branch: str = "student") -> tuple[nn.Module, dict[str, Any]]:
    """The trained backbone of an edgessl checkpoint, in eval mode on CPU, and its `encoder` info."""
    from edgessl.models.registry import build_backbone

    ckpt = load_edgessl_checkpoint(path)
    info = dict(ckpt["encoder"])
    model = build_backbone(info["arch"], info["stem_stride"])
    if info.get("pruned"):  # a pruned encoder: re-shape the registry model to the stored channel counts
        from edgessl.pruning.structure import apply_structure

        apply_structure(model, info["pruned"], info["arch"])
    state = encoder_state(ckpt["model"], branch)
    missing, unexpected = model.load_state_dict(state, strict=False)
    if missing or unexpected:
        keys = ", ".join((missing or unexpected)[:3])
        raise EdgeSSLError(f"'{path}': encoder weights do not match {info['arch']} ({keys} ...)")
    return model.eval(), info
