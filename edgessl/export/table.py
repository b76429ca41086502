"""The export table, one row per artifact (like Ultralytics' benchmark table), as Markdown and JSON.

A row passes when its kNN top-1 is at most `tolerance` points below PyTorch fp32's. Every row has every column
(`COLUMNS`); `speedup` is fp32 latency / this row's latency for the same target (empty when no fp32 was measured).
"""

from __future__ import annotations

import json
import math
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

COLUMNS = ("target", "runtime", "precision", "method", "status", "file", "size_mb", "cosine_mean", "cosine_min",
           "knn_top1", "knn_delta", "latency_ms", "speedup", "threads", "note")


@dataclass
class Row:
    """One artifact's line of the table."""

    target: str
    runtime: str
    precision: str
    status: str  # "pass" | "fail"
    file: str
    size_mb: float
    cosine_mean: float
    cosine_min: float
    knn_top1: float
    knn_delta: float
    latency_ms: float
    speedup: float | None
    threads: int
    note: str = ""
    method: str = ""  # int8: "ptq" | "qat" | "ptq+fallback"; empty for fp32


def status(knn_delta: float, tolerance: float) -> str:
    """"pass" when the kNN top-1 drop is within `tolerance` points."""
    return "pass" if -knn_delta <= tolerance + 1e-9 else "fail"


def _cell(column: str, value: Any) -> str:
    if value is None or value == "" or (isinstance(value, float) and math.isnan(value)):  # nan: not measured
        return "-"
    if column == "status":
        return "✅ pass" if value == "pass" else "❌ fail"
    if column in ("cosine_mean", "cosine_min"):
        return f"{value:.5f}"
    if column == "knn_delta":
        return f"{value:+.2f}"
    if column == "speedup":
        return f"{value:.2f}x"
    if isinstance(value, float):
        return f"{value:.2f}"
    return str(value).replace("|", "\\|")


_HEADERS = {"target": "Format", "runtime": "Runtime", "precision": "Precision", "method": "Method",
            "status": "Status", "file": "File",
            "size_mb": "Size (MB)", "cosine_mean": "Cosine mean", "cosine_min": "Cosine min",
            "knn_top1": "kNN top-1 (%)", "knn_delta": "Δ top-1 (pt)", "latency_ms": "Latency (ms)",
            "speedup": "int8 speed-up", "threads": "Threads", "note": "Note"}


def markdown(rows: list[Row], header: dict[str, Any]) -> str:
    """The table as Markdown with a one-line summary of the reference above it."""
    tol = header["tolerance"]
    tol = ", ".join(f"{k} {v:g}" for k, v in tol.items()) if isinstance(tol, dict) else f"{tol:g}"
    lines = [f"PyTorch fp32 reference: kNN top-1 {header['reference']['knn_top1']:.2f}% "
             f"(k={header['reference']['k']}, T={header['reference']['temperature']:g}, "
             f"{header['reference']['num_train']} train / {header['reference']['num_test']} test images); "
             f"{header['arch']} at {header['image_size']} px; tolerance {tol} pt; "
             "latency: median, batch 1, after warm-up.", "",
             "| " + " | ".join(_HEADERS[c] for c in COLUMNS) + " |",
             "|" + "|".join("---" for _ in COLUMNS) + "|"]
    lines += ["| " + " | ".join(_cell(c, getattr(r, c)) for c in COLUMNS) + " |" for r in rows]
    return "\n".join(lines) + "\n"


def _json_row(row: Row) -> dict[str, Any]:
    """A row for the JSON table: not-measured (nan) values as null, which strict JSON readers accept."""
    return {k: None if isinstance(v, float) and math.isnan(v) else v for k, v in asdict(row).items()}


def write_table(rows: list[Row], header: dict[str, Any], md_path: Path, json_path: Path) -> str:
    """Write the Markdown and JSON tables; return the Markdown. JSON = `header` plus `rows` (all columns)."""
    text = markdown(rows, header)
    md_path.write_text(text)
    json_path.write_text(json.dumps({**header, "columns": list(COLUMNS), "rows": [_json_row(r) for r in rows]},
                                    indent=2) + "\n")
    return text
