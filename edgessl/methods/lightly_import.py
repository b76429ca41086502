"""The peer methods' one door to `lightly` (an optional extra): a one-line error when it is not installed."""

from __future__ import annotations

import importlib
from types import ModuleType

from edgessl.errors import EdgeSSLError


def require_lightly(method: str) -> ModuleType:
    """`lightly` with its `loss` and `models` submodules loaded, or a one-line error naming the extra."""
    try:
        lightly = importlib.import_module("lightly")
        for sub in ("loss", "models.modules", "models.utils"):
            importlib.import_module(f"lightly.{sub}")
    except ImportError:
        raise EdgeSSLError(f"method={method} needs lightly: pip install 'lightly==1.6.0' "
                           "(or pip install 'edgessl[peers]')") from None
    return lightly
