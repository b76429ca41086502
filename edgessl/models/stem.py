"""Stride-1 stems for 32/64 px inputs, found from timm's own metadata rather than per-family code.

`pretrained_cfg['first_conv']` names the convolution(s) that see the image (several for a multi-branch,
reparameterizable stem such as MobileOne's); halving the network's total stride means making those stride 1.
A stem that cannot take it (a patch embedding, a network with a fixed input size) is a one-line error that
suggests the input size that works instead.
"""

from __future__ import annotations

import torch
from torch import nn

from edgessl.errors import EdgeSSLError

SIZES = (32, 64, 96, 128, 160, 192, 224, 256)  # candidate sizes tried when suggesting one that works


def _first_convs(model: nn.Module) -> list[str]:
    """The module names timm records as the image-facing convolution(s)."""
    first = (getattr(model, "pretrained_cfg", None) or {}).get("first_conv") or ()
    return [first] if isinstance(first, str) else list(first)


def _owner(model: nn.Module, name: str) -> nn.Module:
    """The module at `name`, or the convolution it wraps (timm's ConvNormAct `.conv`, RepViT's `.c`)."""
    module = model.get_submodule(name)
    if isinstance(module, nn.Conv2d):
        return module
    convs = [m for m in module.modules() if isinstance(m, nn.Conv2d)]
    if not convs:
        raise LookupError(name)
    return convs[0]


def working_size(model: nn.Module) -> int | None:
    """The smallest of `SIZES` at which `model` gives features; None if none does."""
    was_training = model.training
    model.eval()
    try:
        for size in SIZES:
            try:
                with torch.no_grad():
                    if model(torch.zeros(1, 3, size, size)).shape[-1] > 0:
                        return size
            except (RuntimeError, AssertionError, ValueError):
                continue
        return None
    finally:
        model.train(was_training)


def _refuse(arch: str, why: str, model: nn.Module) -> EdgeSSLError:
    size = working_size(model)
    fixed = (getattr(model, "pretrained_cfg", None) or {}).get("fixed_input_size")
    hint = f"use model.stem_stride=2 with data.image_size={size}{'' if fixed else ' or more'}" if size else \
        "use model.stem_stride=2"
    return EdgeSSLError(f"model.arch={arch} cannot take model.stem_stride=1: {why}; {hint}")


def reduce_stem(model: nn.Module, arch: str) -> None:
    """Make the stride-2 convolution(s) that see the image stride 1, in place (and the stride their
    reparameterizable block records, which its fused convolution will use)."""
    cfg = getattr(model, "pretrained_cfg", None) or {}
    names = _first_convs(model)
    if cfg.get("fixed_input_size"):
        raise _refuse(arch, f"timm marks its input size fixed ({cfg['input_size'][-1]} px: attention biases)", model)
    try:
        convs = {name: _owner(model, name) for name in names}
    except (LookupError, AttributeError):
        convs = {}
    if not convs:
        raise _refuse(arch, "timm records no stem convolution (pretrained_cfg['first_conv']) for it", model)
    strides = {conv.stride[0] for conv in convs.values()}
    if strides != {2}:
        kind = "a patch-embedding stem" if max(strides) > 2 else "a stem without a stride-2 convolution"
        raise _refuse(arch, f"it has {kind} ('{names[0]}', stride {max(strides)})", model)
    for name, conv in convs.items():
        conv.stride = (1, 1)
        parts = name.split(".")
        for depth in range(len(parts) - 1, 0, -1):  # the reparameterizable block holding this branch, if any
            block = model.get_submodule(".".join(parts[:depth]))
            if hasattr(block, "reparameterize") and isinstance(getattr(block, "stride", None), int):
                block.stride = 1  # its fused convolution is built with this stride
                for branch in block.modules():  # every parallel branch sees the image (timm may list only one)
                    if isinstance(branch, nn.Conv2d) and branch.stride == (2, 2):
                        branch.stride = (1, 1)
                break
