"""What a run writes besides checkpoints: `metrics.csv` and TensorBoard events (rank 0 only)."""

from __future__ import annotations

import csv
from pathlib import Path
from typing import Any

# loss = loss_ressl + teacher.weight * loss_distill; loss_distill is empty without a frozen teacher
COLUMNS = ("epoch", "step", "loss", "loss_kind", "loss_ressl", "loss_distill", "lr", "momentum", "pt_entropy",
           "key_cosine", "img_per_s", "knn_top1", "knn_top5", "wall_s")


class RunLog:
    """Appends rows to `metrics.csv` and scalars to TensorBoard. Disabled (a no-op) on ranks other than 0."""

    def __init__(self, run_dir: Path, enabled: bool, resume_step: int | None = None) -> None:
        self.enabled = enabled
        self.path = run_dir / "metrics.csv"
        self.writer = None
        if not enabled:
            return
        if resume_step is not None and self.path.exists():
            self._truncate_after(resume_step)
        if not self.path.exists():
            with self.path.open("w", newline="") as fh:
                csv.writer(fh).writerow(COLUMNS)
        from torch.utils.tensorboard import SummaryWriter

        self.writer = SummaryWriter(str(run_dir / "tensorboard"), purge_step=resume_step)

    def _truncate_after(self, step: int) -> None:
        """Drop rows logged after the checkpoint we resume from, so the CSV reads as one clean run."""
        with self.path.open(newline="") as fh:
            rows = list(csv.DictReader(fh))
        with self.path.open("w", newline="") as fh:
            w = csv.DictWriter(fh, COLUMNS, extrasaction="ignore")
            w.writeheader()
            w.writerows(r for r in rows if r.get("step") and int(r["step"]) <= step)

    def log(self, row: dict[str, Any]) -> None:
        if not self.enabled:
            return
        with self.path.open("a", newline="") as fh:
            csv.DictWriter(fh, COLUMNS, extrasaction="ignore").writerow(
                {k: (f"{v:.6g}" if isinstance(v, float) else v) for k, v in row.items()})
        for key, value in row.items():
            if key not in ("epoch", "step", "loss_kind") and isinstance(value, (int, float)):
                self.writer.add_scalar(key, value, row["step"])

    def close(self) -> None:
        if self.writer is not None:
            self.writer.close()
