"""The shape of a pruned encoder as plain numbers, and the rebuild: registry arch -> apply shapes -> load weights.

Structured pruning changes only channel counts. The checkpoint's `encoder["pruned"]` entry stores them, per layer,
as ints (`capture`), so a pruned checkpoint still loads with `torch.load(weights_only=True)`: no pickled modules,
no code from the file, and torch-pruning need not be installed to use it. `apply_structure` re-shapes a freshly
built registry model to match; the weights then load as usual (`edgessl.models.encoder_loading.load_encoder`).
"""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

from edgessl.errors import EdgeSSLError
from edgessl.models.registry import feature_dim

FORMAT = 1
# The attributes that fix a layer's tensor shapes; the only layer types channel pruning changes in the registry.
SHAPE_ATTRS: dict[type[nn.Module], tuple[str, ...]] = {
    nn.Conv2d: ("in_channels", "out_channels", "groups"),
    nn.modules.batchnorm._BatchNorm: ("num_features",),
    nn.Linear: ("in_features", "out_features"),
}


def _shape_attrs(module: nn.Module) -> tuple[str, ...] | None:
    return next((attrs for kind, attrs in SHAPE_ATTRS.items() if isinstance(module, kind)), None)


def capture(model: nn.Module) -> dict[str, Any]:
    """The channel counts of every conv, batch-norm and linear layer of `model`, and its embedding width."""
    layers = {name: {a: int(getattr(m, a)) for a in attrs}
              for name, m in model.named_modules() if (attrs := _shape_attrs(m)) is not None}
    return {"format": FORMAT, "feature_dim": feature_dim(model), "layers": layers}


def set_feature_dim(model: nn.Module, dim: int) -> None:
    """Record the embedding width where `edgessl.models.registry.feature_dim` reads it."""
    setattr(model, "head_hidden_size" if getattr(model, "head_hidden_size", None) else "num_features", int(dim))


def _resize(module: nn.Module) -> None:
    """Fresh (uninitialised) tensors of the shapes the module's attributes now say; the weights load over them."""
    if isinstance(module, nn.Conv2d):
        shapes = {"weight": (module.out_channels, module.in_channels // module.groups, *module.kernel_size),
                  "bias": (module.out_channels,)}
    elif isinstance(module, nn.Linear):
        shapes = {"weight": (module.out_features, module.in_features), "bias": (module.out_features,)}
    else:
        n = module.num_features
        shapes = {"weight": (n,), "bias": (n,), "running_mean": (n,), "running_var": (n,)}
    for name, shape in shapes.items():
        old = getattr(module, name, None)
        if old is None:
            continue
        new = torch.empty(shape, dtype=old.dtype, device=old.device)
        if isinstance(old, nn.Parameter):
            setattr(module, name, nn.Parameter(new, requires_grad=old.requires_grad))
        else:
            setattr(module, name, new)  # a registered buffer stays registered (nn.Module.__setattr__)


def apply_structure(model: nn.Module, structure: dict[str, Any], arch: str = "the encoder") -> nn.Module:
    """Re-shape `model` (a fresh registry build of the pruned arch) to the channel counts `capture` stored."""
    if not isinstance(structure, dict) or structure.get("format") != FORMAT or "layers" not in structure:
        raise EdgeSSLError(f"the checkpoint's pruned structure is not format {FORMAT}; re-run `edgessl prune` "
                           "with this edgessl version")
    modules = dict(model.named_modules())
    for name, values in structure["layers"].items():
        module = modules.get(name)
        attrs = _shape_attrs(module) if module is not None else None
        if attrs is None or set(values) != set(attrs):
            raise EdgeSSLError(f"the checkpoint's pruned structure names layer '{name}' that {arch} does not have "
                               "(or of another type); it was pruned from another architecture")
        if all(getattr(module, a) == v for a, v in values.items()):
            continue
        for a, v in values.items():
            setattr(module, a, int(v))
        _resize(module)
    set_feature_dim(model, structure["feature_dim"])
    return model
