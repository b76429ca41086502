"""Export targets (one module each) and their registry; runtimes are imported only when a target is used."""

from __future__ import annotations

from pathlib import Path

from edgessl.errors import EdgeSSLError
from edgessl.export.base import PRECISIONS, Runner, Target
from edgessl.export.onnx_target import OnnxTarget
from edgessl.export.openvino_target import OpenVinoTarget
from edgessl.export.tflite_target import TfliteTarget

TARGETS: dict[str, Target] = {t.name: t for t in (OnnxTarget(), OpenVinoTarget(), TfliteTarget())}


def get_target(name: str) -> Target:
    """The registered target called `name`, or a one-line error listing the valid ones."""
    if name not in TARGETS:
        raise EdgeSSLError(f"unknown export target '{name}'; choose from: {', '.join(TARGETS)}")
    return TARGETS[name]


def target_of(path: str | Path) -> Target:
    """The target whose artifact suffix `path` has (the check command's way to pick a runtime)."""
    suffix = Path(path).suffix.lower()
    for target in TARGETS.values():
        if target.suffix == suffix:
            return target
    raise EdgeSSLError(f"'{path}' is not an exported artifact; expected one of: "
                       f"{', '.join(t.suffix for t in TARGETS.values())}")


__all__ = ["PRECISIONS", "TARGETS", "Runner", "Target", "get_target", "target_of"]
