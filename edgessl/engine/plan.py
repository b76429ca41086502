"""What a run will do, worked out without training: `edgessl pretrain RECIPE --print-config`.

The recipe is resolved and checked as the trainer's start-up checks it (the method's options and `check`, the
architecture name, batch, queue and BatchNorm sizes, the training set's size), then printed in full with the values
derived from it. The output is itself a valid recipe: the derived values are YAML comments.
"""

from __future__ import annotations

import dataclasses
from typing import Any

import yaml

from edgessl.config import Config
from edgessl.data import build_dataset
from edgessl.engine.optim import scaled_lr
from edgessl.engine.run_setup import check_sizes
from edgessl.errors import EdgeSSLError
from edgessl.methods import describe, ignored_note, resolve
from edgessl.methods.distill import distillation_on
from edgessl.models.registry import check_arch


def train_images(cfg: Config) -> tuple[int | None, str]:
    """The training set's size (never downloading), or None and why it cannot be counted here."""
    try:
        return len(build_dataset(dataclasses.replace(cfg.data, download=False), "train")), ""
    except EdgeSSLError as exc:
        return None, str(exc)


def _queues(cfg: Config, options: Any) -> list[tuple[str, int]]:
    """(key, size) of every queue the run fills: the method's and the distillation teacher's."""
    found = [(f"{cfg.method}.queue_size", options.queue_size)] if hasattr(options, "queue_size") else []
    if distillation_on(cfg.distill):
        found.append(("distill.queue_size", cfg.distill.queue_size))
    return found


def _loss_lines(cfg: Config, options: Any, steps_per_epoch: int | None) -> list[str]:
    """Which loss trains when: the method's own line, its warm-up in steps, and the distillation term."""
    ignored = ignored_note(cfg)
    lines = [f"loss: {describe(cfg)}", *([ignored] if ignored else [])]
    warm = getattr(options, "infonce_warmup_epochs", 0)
    if warm and steps_per_epoch:
        lines.append(f"  InfoNCE warm-up: steps 0-{round(warm * steps_per_epoch) - 1}")
    if distillation_on(cfg.distill):
        lines.append(f"  + {cfg.distill.weight:g} x relational distillation from the frozen {cfg.distill.arch} "
                     f"({cfg.distill.checkpoint or 'no checkpoint set'}), every step")
    return lines


def derived(cfg: Config, world: int) -> list[str]:
    """The values the trainer derives from `cfg` on `world` processes, one line each; raises what start-up would."""
    method, options = resolve(cfg)  # also writes the method's defaults into cfg
    check_arch(cfg.model.arch)
    b, pairs = cfg.train.batch_size, cfg.data.view_pairs
    n, why = train_images(cfg)
    check_sizes(cfg, world, n if n is not None else b, options)  # the image count is checked only when known
    spe = n // b if n is not None else None
    lines = [f"processes: {world}",
             f"global batch: {b} (train.batch_size); local batch: {b // world} a process"
             + (f", {b // world * pairs} rows with data.view_pairs={pairs}" if pairs > 1 else ""),
             f"scaled lr: {scaled_lr(cfg.optim, b):g} (optim.lr {cfg.optim.lr:g} x {b} / optim.base_batch "
             f"{cfg.optim.base_batch})"]
    if spe is None:
        lines.append(f"train images: unknown here ({why}); steps per epoch = train images // {b}")
    else:
        total = cfg.train.epochs * spe
        total = min(total, cfg.train.max_steps) if cfg.train.max_steps else total
        lines += [f"train images: {n}; steps per epoch: {spe}; total steps: {total}",
                  f"lr warm-up: {round(cfg.optim.warmup_epochs * spe)} steps, then cosine to 0"]
    for key, size in _queues(cfg, options):
        lines.append(f"queue turnover: {key}={size} holds the keys of {size // (b * pairs)} steps "
                     f"({b * pairs} keys enqueued a step)")
    mode = getattr(options, "batchnorm", None)
    if mode == "auto":
        mode = "split" if world == 1 else "shuffle"
    if mode:
        lines.append(f"teacher BatchNorm: {mode}")
    return lines + _loss_lines(cfg, options, spe)


def print_config(cfg: Config, world: int) -> str:
    """The resolved recipe as YAML, then the derived values as comments (a valid recipe as a whole)."""
    notes = derived(cfg, world)
    text = yaml.safe_dump(cfg.to_dict(), sort_keys=False)
    return text + "# derived (edgessl pretrain --print-config; nothing was trained):\n" + \
        "".join(f"# {line}\n" for line in notes)
