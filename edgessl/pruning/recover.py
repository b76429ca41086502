"""The recovery phase after pruning: the pruned student trained with its method plus relational distillation from the
frozen unpruned encoder (spec section 5), by the ordinary training engine.

Recovery is an ordinary `edgessl pretrain` run whose recipe says where to start and what to distil from:
`model.init_checkpoint` = the pruned encoder (the engine rebuilds it, pruned structure included, and its
checkpoints carry the structure on), `distill.*` = the original checkpoint. So progress bars, checkpoints, the kNN
monitor and resuming (run the same command again, or `edgessl pretrain <out>/config.yaml`) all work as usual.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

from edgessl.config import Config, config_from_dict

# Recovery defaults, applied before the user's key=value overrides (so those win): distil the pooled backbone features (what is evaluated
# and deployed) rather than the projector output, at weight 1 (the original run's weight was for another teacher),
# for the whole `--recover-epochs`.
DEFAULTS = ("distill.embedding=pooled", "distill.weight=1.0", "train.max_steps=0")


def recovery_config(recipe: dict[str, Any], original: Path, pruned: Path, out: Path, epochs: int,
                    overrides: Sequence[str] = ()) -> Config:
    """The original run's recipe with `overrides`, set up to recover the pruned encoder in `out` for `epochs`."""
    cfg = config_from_dict(recipe, [*DEFAULTS, *overrides], source=f"{original} config")
    cfg.name = f"{cfg.name}-pruned"
    cfg.output_dir = str(out)
    cfg.train.epochs = epochs
    cfg.model.init_checkpoint = str(pruned.resolve())
    cfg.distill.arch = cfg.model.arch
    cfg.distill.checkpoint = str(original.resolve())
    return cfg
