"""What `edgessl prune` reports: MACs, parameters and kNN top-1 of each stage (unpruned, pruned, recovered), as a
Markdown table for the terminal and as JSON in the output folder."""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from torch import nn

from edgessl.config import Config


@dataclass(frozen=True)
class Stage:
    """One encoder's cost and quality; `knn_top1` is None when it was not measured."""

    name: str
    macs: int
    params: int
    knn_top1: float | None


def stage_knn(model: nn.Module, cfg: Config) -> float:
    """Weighted kNN top-1 (percent) of `model` on the recipe's data with its `knn.*` settings (spec section 6)."""
    from edgessl.engine.runtime import resolve_device
    from edgessl.measure.knn import knn_top1
    from edgessl.measure.loaders import eval_loaders

    device = resolve_device(cfg.train.device)
    model.to(device)
    try:
        return knn_top1(model, eval_loaders(cfg), k=cfg.knn.k, temperature=cfg.knn.temperature, device=device,
                        amp=cfg.train.amp).top1
    finally:
        model.cpu()


def markdown(stages: list[Stage]) -> str:
    """The stages as a Markdown table, costs also as a fraction of the first (unpruned) stage."""
    base = stages[0]
    lines = ["| stage | MACs (M) | params (M) | MACs kept | params kept | kNN top-1 |", "|---|---|---|---|---|---|"]
    for s in stages:
        knn = "-" if s.knn_top1 is None else f"{s.knn_top1:.2f}"
        lines.append(f"| {s.name} | {s.macs / 1e6:.2f} | {s.params / 1e6:.3f} | {s.macs / base.macs:.1%} | "
                     f"{s.params / base.params:.1%} | {knn} |")
    return "\n".join(lines)


def write_report(path: Path, stages: list[Stage], info: dict[str, Any]) -> None:
    """`info` (settings, checkpoints) and the stages as JSON."""
    path.write_text(json.dumps({**info, "stages": [asdict(s) for s in stages]}, indent=2) + "\n")
