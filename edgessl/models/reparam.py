"""Reparameterizable encoders (MobileOne, RepViT, FastViT, RepGhost, ...): trained in their multi-branch form,
fused into plain convolutions by timm's `reparameterize_model` before evaluation, export and pruning."""

from __future__ import annotations

from timm.utils.model import reparameterize_model
from torch import nn

FUSE_METHODS = ("reparameterize", "fuse", "switch_to_deploy")  # what timm's reparameterize_model calls
FUSED = "_edgessl_fused"  # set on a fused model: timm's fusion is not idempotent (FastViT's RepMixer fails twice)


def is_reparameterizable(model: nn.Module) -> bool:
    """True when some block of `model` has a fused inference form it is not in yet."""
    if getattr(model, FUSED, False):
        return False
    return any(hasattr(m, name) for m in model.modules() if m is not model for name in FUSE_METHODS)


def inference_form(model: nn.Module, inplace: bool = False) -> nn.Module:
    """`model` with its branches fused (a copy unless `inplace`), in eval mode; `model` itself, mode unchanged,
    when there is nothing to fuse. The fused form computes the same function from the BatchNorm running stats."""
    if not is_reparameterizable(model):
        return model
    was_training = model.training
    fused = reparameterize_model(model.eval(), inplace=inplace)
    if not inplace:
        model.train(was_training)
    setattr(fused, FUSED, True)
    return fused.eval()
