"""Boards' `device_check.json` files (written by `edgessl-device check`) as rows of the report's export table.

Each measured row becomes one report row whose target names where it ran ("tflite @ aarch64 Cortex-A76, 4
threads"), so boards' rows sit beside the host's export rows; the shipped PyTorch reference row is left out.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from edgessl.errors import EdgeSSLError


def _read(path: Path) -> dict[str, Any]:
    if not path.is_file():
        raise EdgeSSLError(f"--device '{path}' not found; pass the device_check.json that edgessl-device wrote")
    try:
        data = json.loads(path.read_text())
    except (UnicodeDecodeError, json.JSONDecodeError):
        data = None
    if not isinstance(data, dict) or not isinstance(data.get("rows"), list) or not isinstance(data.get("device"),
                                                                                               dict):
        raise EdgeSSLError(f"--device '{path}' is not a device_check.json written by edgessl-device check")
    return data


def device_rows(paths: Sequence[str | Path]) -> list[dict[str, Any]]:
    """The measured rows of every file in `paths`, labelled with the device they ran on."""
    rows = []
    for path in paths:
        data = _read(Path(path))
        device = data["device"]
        where = f"{device.get('machine', '?')} {device.get('cpu', '?')}".strip()
        for row in data["rows"]:
            if isinstance(row, dict) and row.get("threads"):  # no threads: the shipped reference
                rows.append({**row, "target": f"{row.get('target', '?')} @ {where}, {row['threads']} threads"})
    return rows
