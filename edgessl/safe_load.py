"""Read a PyTorch checkpoint file safely (`weights_only=True`: tensors and plain containers, never code).

Lives at the package root so that both `models` (teacher weights) and `engine` (resume, export) can use it
without `models` importing the engine.
"""

from __future__ import annotations

import re
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
        text = str(exc)
        code = re.search(r"unsupported GLOBAL ([\w.]+)|Unsupported global: GLOBAL ([\w.]+)", text)
        if code:  # the weights-only unpickler met a callable/class: loading it normally would run code
            raise EdgeSSLError(f"refused: '{path}' is not a plain-weights checkpoint (it would run code when loaded: "
                               f"{code.group(1) or code.group(2)}); only tensors and plain containers are read") \
                from None
        first = text.strip().splitlines()[0] if text.strip() else type(exc).__name__
        if first.startswith("Weights only load failed"):  # torch's long advice does not apply to a corrupt file
            first = next((ln.strip() for ln in text.splitlines() if ln.strip().startswith("Unsupported")),
                         "damaged or not a PyTorch file")
        raise EdgeSSLError(f"'{path}' is not a readable PyTorch checkpoint ({first[:120]})") from None
