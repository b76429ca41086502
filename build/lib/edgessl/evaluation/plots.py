"""The report's figures as PNG files: curves over training, export bars, a 2-D embedding coloured by class.

matplotlib runs with the Agg backend (no display needed); every function writes one file and closes its figure.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402  (after choosing the backend)
import numpy as np  # noqa: E402

Series = tuple[Sequence[float], Sequence[float]]  # (x, y)


def _save(fig: plt.Figure, path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def plot_curves(path: Path, series: dict[str, Series], title: str, xlabel: str,
                reference: tuple[str, float] | None = None, marker: str = "") -> Path:
    """Line plot of one or more (x, y) series; `reference` = (label, y) draws a dashed horizontal line."""
    fig, ax = plt.subplots(figsize=(6.4, 3.6))
    for label, (x, y) in series.items():
        ax.plot(x, y, marker=marker, linewidth=1.4, label=label)
    if reference is not None:
        ax.axhline(reference[1], color="grey", linestyle="--", linewidth=1, label=reference[0])
    ax.set(title=title, xlabel=xlabel)
    ax.grid(alpha=0.3)
    if len(series) > 1 or reference is not None:
        ax.legend(fontsize=8)
    return _save(fig, path)


def plot_bars(path: Path, labels: Sequence[str], panels: dict[str, Sequence[float | None]], title: str) -> Path:
    """One horizontal bar chart per panel (e.g. latency, kNN delta), bars labelled by `labels`; None = no bar."""
    fig, axes = plt.subplots(1, len(panels), figsize=(4.2 * len(panels), 0.45 * len(labels) + 1.6), squeeze=False)
    pos = np.arange(len(labels))
    for ax, (name, values) in zip(axes[0], panels.items()):
        vals = [np.nan if v is None else float(v) for v in values]
        ax.barh(pos, vals, color="tab:blue")
        ax.set_yticks(pos, labels if ax is axes[0][0] else [""] * len(labels))
        ax.invert_yaxis()
        ax.set_title(name, fontsize=10)
        ax.grid(axis="x", alpha=0.3)
    fig.suptitle(title)
    return _save(fig, path)


def plot_embedding(path: Path, xy: np.ndarray, labels: np.ndarray, class_names: Sequence[str] | None = None,
                   title: str = "") -> Path:
    """Scatter plot of 2-D points coloured by class, with a legend for up to 20 classes."""
    fig, ax = plt.subplots(figsize=(6.4, 6.0))
    classes = np.unique(labels)
    size = float(np.clip(4000 / max(1, len(xy)), 4, 30))  # bigger dots when there are few
    cmap = plt.get_cmap("tab10" if len(classes) <= 10 else "tab20" if len(classes) <= 20 else "turbo")
    for i, c in enumerate(classes):
        pts = xy[labels == c]
        color = cmap(i if len(classes) <= 20 else i / max(1, len(classes) - 1))
        name = class_names[c] if class_names is not None and c < len(class_names) else str(c)
        ax.scatter(pts[:, 0], pts[:, 1], s=size, color=color, label=name, alpha=0.8, linewidths=0)
    if len(classes) <= 20:
        ax.legend(fontsize=7, markerscale=2.5, loc="best", frameon=False)
    ax.set(title=title, xticks=[], yticks=[])
    return _save(fig, path)
