"""The one owner of the checkpoint format and of a run folder's file names (the lowest layer: every stage reads it).

Layout of an edgessl checkpoint (a dict; `Checkpoint.to_dict`):
- `edgessl`: format version (int); `config`: the resolved recipe (dict)
- `epoch`: finished epochs; `step`: optimizer steps so far; `epoch_step`: steps into the current epoch
- `encoder`: {arch, stem_stride, image_size, feature_dim, mean, std} -- what an exporter needs; a pruned
  encoder also has `pruned`: its per-layer channel counts (`edgessl.models.structure`), applied on load
- `model`: the method's state dict; every method keeps its trained backbone at `student.backbone.*`
- `distill`: with distillation, the frozen teacher's arch, checkpoint path, sha256 and embedding (never its
  weights); files written before the `distill:` rename call it `teacher`
- `optimizer`, `scaler`, `metrics`; `pruning` in a `pruned.pt`; no RNG state: a step's random draws are seeded from
  (seed, step, rank) (`engine.runtime.seed_step`), so a resume at any world size needs none (older files' `rng` is ignored)
"""

from __future__ import annotations

import errno
import os
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from edgessl.errors import EdgeSSLError
from edgessl.safe_load import load_checkpoint

FORMAT_VERSION = 1


@dataclass(frozen=True)
class RunFolder:
    """The files `edgessl pretrain`, `eval`, `export`, `prune` and `report` write into a run folder."""

    root: Path

    LAST = "last.pt"
    CONFIG = "config.yaml"
    METRICS = "metrics.csv"
    TENSORBOARD = "tensorboard"
    EVAL = "eval.json"
    EXPORT_TABLE = "export_report.json"  # the newest export table, copied here for the report
    REPORT = "report.html"
    REPORT_ASSETS = "report"
    PRUNED = "pruned.pt"
    PRUNE_REPORT = "prune.json"

    def __truediv__(self, name: str) -> Path:
        return Path(self.root) / name

    @property
    def last(self) -> Path:
        return self / self.LAST

    @property
    def config(self) -> Path:
        return self / self.CONFIG

    @property
    def metrics(self) -> Path:
        return self / self.METRICS


def checkpoint_path(path: str | Path) -> Path:
    """A checkpoint file itself, or a run folder's `last.pt`; a one-line error for anything else."""
    path = Path(path)
    if path.is_dir():
        ckpt = RunFolder(path).last
        if not ckpt.is_file():
            raise EdgeSSLError(f"run folder '{path}' has no {RunFolder.LAST}; train it with `edgessl pretrain` "
                               "or pass a checkpoint .pt file")
        return ckpt
    if path.is_file() and path.suffix == ".pt":
        return path
    if not path.exists():
        raise EdgeSSLError(f"'{path}' not found; pass a run folder (runs/<name>) or a checkpoint .pt file")
    raise EdgeSSLError(f"'{path}' is neither a run folder nor a checkpoint .pt file")


def save_atomic(obj: Any, path: str | Path) -> None:
    """`torch.save` to a temp file in the same folder, fsync, then rename over `path`. A full disk is a one-line
    error: the temp file is removed and `path` (the last good checkpoint) is left as it was."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as fh:
            torch.save(obj, fh)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException as exc:
        Path(tmp).unlink(missing_ok=True)
        if isinstance(exc, OSError) and exc.errno in (errno.ENOSPC, errno.EDQUOT):
            last = f"'{path}' (unchanged)" if path.exists() else "none (nothing was saved yet)"
            raise EdgeSSLError(f"disk full while saving '{path}': its partial copy was removed, nothing else was "
                               f"freed; the last good checkpoint is {last}; free space and run the same command "
                               f"again") from None
        raise


def remove_stale_temps(folder: str | Path) -> list[Path]:
    """Delete the temp files of saves that a kill -9 interrupted (`.<name>.pt.*.tmp`, up to a checkpoint's size
    each). Only safe while holding the folder (`edgessl.folder_lock`): a running save's temp file looks the same."""
    stale = sorted(Path(folder).glob(".*.pt.*.tmp"))
    for path in stale:
        path.unlink(missing_ok=True)
    return stale


@dataclass
class Checkpoint:
    """An edgessl checkpoint in memory; `save` writes it atomically, `load` reads one safely (`weights_only`)."""

    config: dict[str, Any]
    encoder: dict[str, Any]
    model: dict[str, torch.Tensor]
    epoch: int = 0
    step: int = 0
    epoch_step: int = 0
    distill: dict[str, Any] | None = None
    optimizer: dict[str, Any] | None = None
    scaler: dict[str, Any] | None = None
    metrics: dict[str, Any] = field(default_factory=lambda: {"knn_top1": {}})
    pruning: dict[str, Any] | None = None
    path: Path | None = None  # where it was read from (not saved)

    def to_dict(self) -> dict[str, Any]:
        out = {"edgessl": FORMAT_VERSION, "config": self.config, "epoch": self.epoch, "step": self.step,
               "epoch_step": self.epoch_step, "encoder": self.encoder, "model": self.model, "distill": self.distill,
               "optimizer": self.optimizer, "scaler": self.scaler, "metrics": self.metrics}
        return out if self.pruning is None else {**out, "pruning": self.pruning}

    def save(self, path: str | Path) -> None:
        save_atomic(self.to_dict(), path)

    @classmethod
    def load(cls, path: str | Path) -> "Checkpoint":
        """Read an edgessl checkpoint; refuse other files with a one-line error."""
        return cls.from_dict(load_checkpoint(path), path)

    @staticmethod
    def is_edgessl(d: Any) -> bool:
        return isinstance(d, dict) and "edgessl" in d and "encoder" in d

    @classmethod
    def from_dict(cls, d: Any, path: str | Path) -> "Checkpoint":
        """A loaded checkpoint dict (read from `path`) as a `Checkpoint`; a one-line error if it is none."""
        if not cls.is_edgessl(d):
            raise EdgeSSLError(f"'{path}' is not an edgessl checkpoint (no 'edgessl'/'encoder' entries); "
                               "pass a last.pt written by `edgessl pretrain`")
        if not isinstance(d.get("config"), dict):
            raise EdgeSSLError(f"'{path}' stores no recipe ('config'); it was not written by `edgessl pretrain`")
        return cls(d["config"], d["encoder"], d.get("model", {}), int(d.get("epoch", 0)), int(d.get("step", 0)),
                   int(d.get("epoch_step", 0)), d.get("distill", d.get("teacher")), d.get("optimizer"),
                   d.get("scaler"), d.get("metrics") or {"knn_top1": {}}, d.get("pruning"), Path(path))

    def encoder_state(self, branch: str = "student") -> dict[str, torch.Tensor]:
        """The backbone weights of one branch (`student` or `teacher`, the EMA teacher)."""
        prefix = f"{branch}.backbone."
        return {k[len(prefix):]: v for k, v in self.model.items() if k.startswith(prefix)}
