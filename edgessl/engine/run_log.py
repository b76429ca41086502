"""What a run writes besides checkpoints: `metrics.csv` and TensorBoard events (rank 0 only)."""

from __future__ import annotations

import csv
from pathlib import Path
from typing import Any

from edgessl.checkpoint import RunFolder

# the engine's columns around the method's own (`Method.columns`, e.g. pt_entropy); `loss` is what trained,
# `loss_kind` names it; with distillation, loss = loss_<method> + distill.weight * loss_distill
HEAD = ("epoch", "step", "method", "loss_kind", "loss")
TAIL = ("lr", "img_per_s", "knn_top1", "knn_top5", "wall_s")
TEXT = ("epoch", "step", "method", "loss_kind")  # not TensorBoard scalars


class RunLog:
    """Appends rows to `metrics.csv` and scalars to TensorBoard. Disabled (a no-op) on ranks other than 0.

    On resume the CSV is cut back to the resumed step; without a checkpoint to resume it starts afresh, so a
    restart never repeats rows."""

    def __init__(self, run_dir: Path, enabled: bool, method_columns: tuple[str, ...] = (),
                 resume_step: int | None = None) -> None:
        self.enabled = enabled
        self.columns = (*HEAD, *method_columns, *TAIL)
        self.path = RunFolder(run_dir).metrics
        self.writer = None
        if not enabled:
            return
        if resume_step is not None and self.path.exists():
            self._truncate_after(resume_step)
        if resume_step is None or not self.path.exists():  # nothing to resume: rows of a killed start are stale
            with self.path.open("w", newline="") as fh:
                csv.writer(fh).writerow(self.columns)
        from torch.utils.tensorboard import SummaryWriter

        self.writer = SummaryWriter(str(RunFolder(run_dir) / RunFolder.TENSORBOARD), purge_step=resume_step)

    def _truncate_after(self, step: int) -> None:
        """Drop rows logged after the checkpoint we resume from, so the CSV reads as one clean run."""
        with self.path.open(newline="") as fh:
            rows = list(csv.DictReader(fh))
        with self.path.open("w", newline="") as fh:
            w = csv.DictWriter(fh, self.columns, extrasaction="ignore")
            w.writeheader()
            w.writerows(r for r in rows if r.get("step") and int(r["step"]) <= step)

    def log(self, row: dict[str, Any]) -> None:
        if not self.enabled:
            return
        with self.path.open("a", newline="") as fh:
            csv.DictWriter(fh, self.columns, extrasaction="ignore").writerow(
                {k: (f"{v:.6g}" if isinstance(v, float) else v) for k, v in row.items()})
        for key, value in row.items():
            if key not in TEXT and isinstance(value, (int, float)):
                self.writer.add_scalar(key, value, row["step"])

    def close(self) -> None:
        if self.writer is not None:
            self.writer.close()
