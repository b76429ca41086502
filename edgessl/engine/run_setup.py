"""What the engine checks and prepares before the first step: the run folder's name, resume compatibility, batch and
queue sizes, the starting backbone, and the signal flag that lets a run stop cleanly."""

from __future__ import annotations

import os
import signal
from datetime import datetime
from pathlib import Path
from typing import Any

import torch
from torch import nn

from edgessl import distributed as D
from edgessl.config import Config, config_from_dict
from edgessl.errors import EdgeSSLError
from edgessl.methods.base import check_queue
from edgessl.methods.batchnorm import usable_splits
from edgessl.methods.distill import distillation_on
from edgessl.models.encoder_loading import load_encoder
from edgessl.models.registry import build_backbone, timm_kwargs

# Keys that may change when a run is resumed (they do not change what is being trained).
RESUMABLE_CHANGES = ("output_dir", "data.root", "data.num_workers", "data.download", "train.epochs",
                     "train.max_steps", "train.device", "train.threads", "train.checkpoint_every",
                     "train.knn_every", "train.log_every", "train.compile", "knn.batch_size", "knn.bank_samples",
                     "dist.backend")


def default_run_dir(cfg: Config) -> Path:
    """runs/<name>-<timestamp>; under torchrun runs/<name>-<rendezvous id>, which stays the same when
    torchrun restarts the workers (--max-restarts), so a restarted job finds and resumes its checkpoint."""
    run_id = os.environ.get("TORCHELASTIC_RUN_ID", "none")
    tag = run_id if D.launched_by_torchrun() and run_id != "none" else datetime.now().strftime("%Y%m%d-%H%M%S")
    return Path("runs") / f"{cfg.name}-{tag}"


def _flatten(d: dict, prefix: str = "") -> dict:
    out = {}
    for k, v in d.items():
        if isinstance(v, dict):
            out.update(_flatten(v, f"{prefix}{k}."))
        else:
            out[prefix + k] = v
    return out


def check_resume_compatible(saved: dict, cfg: Config, path: Path, encoder: dict, built: dict) -> None:
    """Refuse to resume a checkpoint under a recipe that trains something else, or into an encoder built with other
    timm options than the checkpoint's (`encoder` vs `built`: `encoder.timm_kwargs`, absent = none). The saved
    recipe is read as a recipe first, so one written before a key was renamed or added (`teacher:` -> `distill:`,
    `method:`) compares by what it means."""
    was, now = encoder.get("timm_kwargs", {}), built.get("timm_kwargs", {})
    if was != now:
        raise EdgeSSLError(f"cannot resume {path}: its {cfg.model.arch} was built with timm options {was}, this "
                           f"edgessl builds it with {now} (docs/students.md); finish the run with the edgessl "
                           "version that started it, or set output_dir to a new folder")
    old, new = _flatten(config_from_dict(saved, source=f"{path} config").to_dict()), _flatten(cfg.to_dict())
    for key in sorted(set(old) | set(new)):
        if key not in RESUMABLE_CHANGES and old.get(key) != new.get(key):
            raise EdgeSSLError(f"cannot resume {path}: '{key}' was {old.get(key)!r}, now {new.get(key)!r}; "
                               f"restore it or set output_dir to a new folder")


def _bn_group(cfg: Config, world: int, batch: int, options: Any) -> int:
    """Rows one BatchNorm call normalizes together with global batch `batch`: a process's rows (view pairs
    stacked), divided into the EMA teacher's split-BN groups on one process (methods with a `batchnorm` option)."""
    rows = batch // world * cfg.data.view_pairs
    mode = getattr(options, "batchnorm", "plain")
    split = mode == "split" or (mode == "auto" and world == 1)
    return rows // usable_splits(rows, options.bn_splits) if split else rows


def check_sizes(cfg: Config, world: int, n_train: int, options: Any = None) -> None:
    """The batch/queue/world-size rules that must hold before the first step (`options`: the method's)."""
    b = cfg.train.batch_size
    if b % world:
        raise EdgeSSLError(f"train.batch_size={b} (global) is not divisible by the world size {world}; "
                           f"use a multiple of {world}")
    if distillation_on(cfg.distill):  # a method checks its own queues (`Method.check`)
        check_queue("distill.queue_size", cfg.distill.queue_size, cfg)
    if _bn_group(cfg, world, b, options) < 2:
        smallest = next(n for n in range(world, 2**20, world) if _bn_group(cfg, world, n, options) >= 2)
        splits = f", {cfg.method}.bn_splits={options.bn_splits}" if hasattr(options, "bn_splits") else ""
        raise EdgeSSLError(f"train.batch_size={b} leaves {_bn_group(cfg, world, b, options)} image(s) per BatchNorm "
                           f"group ({b // world} per process{splits}); BatchNorm needs more than 1 per process and "
                           f"split-BN group: use train.batch_size={smallest} or more"
                           + (f", or lower {cfg.method}.bn_splits" if splits else ""))
    if n_train < b:
        raise EdgeSSLError(f"the training set has {n_train} images, fewer than one batch "
                           f"(train.batch_size={b}); lower the batch or add data")


def initial_backbone(cfg: Config) -> tuple[nn.Module, dict]:
    """The student backbone to start from: a fresh registry model, or the encoder of `model.init_checkpoint` (e.g.
    a pruned one, for recovery). Also the `encoder` entries the run's checkpoints must carry on (the timm options
    it was built with, a pruned structure), so they reload the same way."""
    if not cfg.model.init_checkpoint:
        return build_backbone(cfg.model.arch, cfg.model.stem_stride), {"timm_kwargs": timm_kwargs(cfg.model.arch)}
    model, info = load_encoder(cfg.model.init_checkpoint)
    if (info["arch"], info["stem_stride"]) != (cfg.model.arch, cfg.model.stem_stride):
        raise EdgeSSLError(f"model.init_checkpoint '{cfg.model.init_checkpoint}' holds a {info['arch']} with stem "
                           f"stride {info['stem_stride']}; set model.arch and model.stem_stride to match")
    return model.train(), {"timm_kwargs": info.get("timm_kwargs", {}), **{k: info[k] for k in ("pruned",) if k in info}}


class StopFlag:
    """SIGINT/SIGTERM set a flag; the loop saves a checkpoint and exits at the next step."""

    def __init__(self) -> None:
        self.raised = False
        self._old = {}

    def __enter__(self) -> "StopFlag":
        for sig in (signal.SIGINT, signal.SIGTERM):
            try:
                self._old[sig] = signal.signal(sig, self._handle)
            except ValueError:  # not the main thread
                pass
        return self

    def _handle(self, signum, frame) -> None:
        if self.raised:  # second signal: stop now
            raise KeyboardInterrupt
        self.raised = True

    def __exit__(self, *exc) -> None:
        for sig, old in self._old.items():
            signal.signal(sig, old)


def agree_on_stop(first_bad: torch.Tensor, stop: bool) -> tuple[int, bool]:
    """One all_reduce at a log step: the earliest step with a NaN/inf loss on any rank (-1 if none) and whether
    any rank got a stop signal. Every rank gets the same answer, so all raise, stop or go on together (a rank
    raising alone would leave the others hanging in their next collective)."""
    never = torch.iinfo(torch.long).min
    flags = torch.stack([torch.where(first_bad >= 0, -first_bad, never),
                         torch.full_like(first_bad, int(stop))])
    neg_bad, stop_any = D.all_reduce_max(flags).tolist()
    return (-neg_bad if neg_bad != never else -1), bool(stop_any)
