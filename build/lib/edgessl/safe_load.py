"""Read a PyTorch checkpoint file safely (`weights_only=True`: tensors and plain containers, never code).

Lives at the package root so that both `models` (teacher weights) and `engine` (resume, export) can use it
without `models` importing the engine.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch

from edgessl.errors import EdgeSSLError


def load_checkpoint(path: str | Path) -> dict[str, Any]:
    """Load any checkpoint file safely; a one-line error when it is missing or unreadable."""
    path = Path(path)
    if not path.is_file():
        raise EdgeSSLError(f"checkpoint '{path}' not found")
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # pickle/zip errors differ by torch version; all mean "not a checkpoint"
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise EdgeSSLError(f"'{path}' is not a readable PyTorch checkpoint ({first[:120]})") from None
