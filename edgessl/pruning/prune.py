"""Structured (channel) pruning of an encoder to a MACs and/or parameter budget with torch-pruning's DepGraph.

DepGraph groups the channels that must go together (residual adds, depthwise convs, squeeze-excite gates), so
whole channels are removed and the model stays a plain, smaller timm model. Pruning is iterative: each step
removes 1 % more channels of every prunable group (the same ratio in every layer, ranked by the chosen
importance), and it stops at the first step whose MACs (and parameters) are at or under the targets, so the
result lands within about one step (1-3 % of the MACs) under the target.

Channel counts are rounded to multiples of `round_to` (default 4). Measured with ONNX Runtime on this x86 CPU
(fp32, batch 1, 1 thread): MobileNetV3-Small at 50 % MACs ran 0.86 ms with arbitrary counts, slower than the
unpruned 0.28 ms, and 0.20 ms with multiples of 4 (EfficientNet-B0: 3.3 ms, 0.85-0.96 ms, unpruned 2.1 ms):
odd counts drop its convolutions off the blocked kernels. Multiples of 8 overshoot a 50 % target on these small
models (46 % of the MACs for MobileNetV3-Small).

Kept intact unless asked: the stem (the first conv's output channels: cheap, and the first features everything
builds on) and the embedding width (the last layer's output channels: what the kNN bank, the projector and
deployed consumers see).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING

import torch
import torch.nn.functional as F
from torch import nn

from edgessl.errors import EdgeSSLError
from edgessl.methods.losses import relation_loss
from edgessl.models.registry import probe_output_shape
from edgessl.models.structure import set_feature_dim

if TYPE_CHECKING:
    from torch_pruning.pruner.importance import Importance

IMPORTANCES = ("magnitude", "taylor", "bn")
STEPS = 90  # iterative steps of 1 % of the channels each
MAX_CHANNEL_RATIO = 0.9  # no group loses more than 90 % of its channels
TAU_S, TAU_T = 0.1, 0.04  # ReSSL's temperatures for the Taylor criterion's loss


@dataclass(frozen=True)
class Cost:
    """MACs and parameters of an encoder at batch 1 and its input size."""

    macs: int
    params: int


def check_settings(macs: float | None, params: float | None, criterion: str, round_to: int = 1) -> None:
    """At least one target, each a fraction strictly between 0 and 1, a known importance criterion, and a channel
    multiple >= 1."""
    for name, value in (("--macs", macs), ("--params", params)):
        if value is not None and not 0 < value < 1:
            raise EdgeSSLError(f"{name} must be a ratio strictly between 0 and 1 (e.g. 0.5 keeps half); got {value}")
    if macs is None and params is None:
        raise EdgeSSLError("give a target: --macs R and/or --params R (ratios in (0, 1))")
    if criterion not in IMPORTANCES:
        raise EdgeSSLError(f"--importance must be one of {', '.join(IMPORTANCES)}; got '{criterion}'")
    if round_to < 1:
        raise EdgeSSLError(f"--round-to must be >= 1 (1 = no rounding); got {round_to}")


def require_torch_pruning() -> None:
    """A one-line error when the optional dependency is missing."""
    try:
        import torch_pruning  # noqa: F401
    except ImportError:
        raise EdgeSSLError("pruning needs torch-pruning: pip install 'torch-pruning==1.6.1' "
                           "(or pip install 'edgessl[prune]')") from None


def cost(model: nn.Module, image_size: int) -> Cost:
    """MACs and parameters counted by torch-pruning on one (1, 3, S, S) image."""
    import torch_pruning as tp

    was_training = model.training
    macs, params = tp.utils.count_ops_and_params(model.eval(), torch.zeros(1, 3, image_size, image_size))
    model.train(was_training)
    return Cost(int(macs), int(params))


def edge_layers(model: nn.Module, image_size: int) -> tuple[nn.Module, nn.Module]:
    """The first and the last conv/linear layer in forward order: the stem and the layer making the embedding."""
    order: list[nn.Module] = []
    hooks = [m.register_forward_hook(lambda m, i, o: order.append(m))
             for m in model.modules() if isinstance(m, (nn.Conv2d, nn.Linear))]
    try:
        probe_output_shape(model, image_size)
    finally:
        for h in hooks:
            h.remove()
    return order[0], order[-1]


def importance(name: str) -> Importance:
    """torch-pruning's criterion for `magnitude` (group L2 norm), `taylor` (|w * dL/dw|) or `bn` (BN scale)."""
    import torch_pruning as tp

    return {"magnitude": tp.importance.GroupMagnitudeImportance, "taylor": tp.importance.GroupTaylorImportance,
            "bn": tp.importance.BNScaleImportance}[name]()


def taylor_loss(model: nn.Module, strong: torch.Tensor, weak: torch.Tensor) -> torch.Tensor:
    """A label-free loss for Taylor importance: ReSSL's relation loss of the strong view's embeddings against the
    weak view's, with the batch's own weak embeddings as the relation set (there is no queue in a pruning step)."""
    z_s = F.normalize(model(strong).float(), dim=1)
    with torch.no_grad():
        z_t = F.normalize(model(weak).float(), dim=1)
    return relation_loss(z_s, z_t, z_t, TAU_S, TAU_T)[0]


def prune_to_target(model: nn.Module, image_size: int, macs: float | None = None, params: float | None = None,
                    criterion: str = "magnitude", keep_stem: bool = True, keep_embedding: bool = True,
                    round_to: int = 4, views: Iterator[tuple[torch.Tensor, torch.Tensor]] | None = None,
                    log: Callable[[str], None] = print) -> tuple[Cost, Cost]:
    """Prune `model` in place until its MACs are <= `macs` x and its parameters <= `params` x the original;
    returns the (before, after) costs. Pruned channel counts are multiples of `round_to` (1 = any count).
    `views` yields (strong, weak) batches; Taylor importance needs them."""
    import torch_pruning as tp

    check_settings(macs, params, criterion, round_to)
    if criterion == "taylor" and views is None:
        raise EdgeSSLError("Taylor importance needs training images to compute gradients")
    before = cost(model, image_size)
    stem, last = edge_layers(model, image_size)
    ignored = [m for m, keep in ((stem, keep_stem), (last, keep_embedding)) if keep]
    model.eval()  # BN uses its running statistics while the graph is traced and gradients are taken
    example = torch.zeros(1, 3, image_size, image_size)
    pruner = tp.pruner.MetaPruner(model, example, importance=importance(criterion), pruning_ratio=MAX_CHANNEL_RATIO,
                                  iterative_steps=STEPS, ignored_layers=ignored, global_pruning=False,
                                  round_to=round_to if round_to > 1 else None)

    def reached(c: Cost) -> bool:
        return (macs is None or c.macs <= macs * before.macs) and (params is None or c.params <= params * before.params)

    after = before
    for _ in range(STEPS):
        if criterion == "taylor":
            model.zero_grad(set_to_none=True)
            taylor_loss(model, *next(views)).backward()
        pruner.step()
        after = cost(model, image_size)
        if reached(after):
            break
    model.zero_grad(set_to_none=True)
    if not reached(after):
        raise EdgeSSLError(f"could not reach the target: at most {MAX_CHANNEL_RATIO:.0%} of each layer's channels "
                           f"are pruned, leaving {after.macs / before.macs:.1%} of the MACs and "
                           f"{after.params / before.params:.1%} of the parameters; raise --macs/--params")
    if not keep_embedding:
        set_feature_dim(model, probe_output_shape(model, image_size)[-1])
    log(f"pruned with {criterion} importance: MACs {before.macs / 1e6:.2f}M -> {after.macs / 1e6:.2f}M "
        f"({after.macs / before.macs:.1%}), params {before.params / 1e6:.3f}M -> {after.params / 1e6:.3f}M "
        f"({after.params / before.params:.1%})")
    return before, after
