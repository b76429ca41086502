"""The interface every export target implements, and the helpers they share.

Input convention (all targets, fp32 and int8): an artifact takes ONE image batch of float32 (int8 TFLite: that
float32 tensor quantized with the artifact's `input_quantization`, see `tflite_target`), already normalized
the way training and evaluation normalize it -- pixels scaled to [0, 1], then `(x - mean) / std` per channel with
the checkpoint's mean/std -- at the checkpoint's image size, batch 1. Layout is NCHW for ONNX and OpenVINO and
NHWC for TFLite (its native layout). Normalization is not baked into the graph, so calibration, the on-device
check and deployment all feed the exact tensors `edgessl.data.eval_transform` produces. Each artifact records
this (mean, std, layout, size, input/output quantization) in its metadata: ONNX `metadata_props`, OpenVINO
`rt_info`, TFLite a sidecar `<file>.json`; the model card beside it says the same in prose.

A `Runner` hides layout and I/O quantization: it always takes normalized float32 NCHW `(N, 3, H, W)` and returns
float32 embeddings `(N, D)`, so the check compares runtimes without knowing them.
"""

from __future__ import annotations

import importlib.util
import json
import re
from abc import ABC, abstractmethod
from collections import Counter
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar

import numpy as np

from edgessl.errors import EdgeSSLError
from edgessl.export.profiles import Profile, load_profile

if TYPE_CHECKING:
    from torch import nn

    from edgessl.export.qat import Finetune

Runner = Callable[[np.ndarray], np.ndarray]
PRECISIONS = ("fp32", "int8")
METADATA_KEY = "edgessl"  # the one metadata entry (a JSON object) every artifact carries


class Target(ABC):
    """One export format and its runtime. Adding a target = one subclass module + `export/<name>.yaml`."""

    name: ClassVar[str]  # also the profile's file name
    suffix: ClassVar[str]  # the artifact's extension, e.g. ".onnx"
    runtime: ClassVar[str]  # what runs it, for the table
    layout: ClassVar[str] = "NCHW"
    packages: ClassVar[dict[str, str]]  # importable module -> pip requirement, checked before exporting/loading
    options: ClassVar[dict[str, Any]] = {}  # target-specific profile keys and defaults
    quantization: ClassVar[dict[str, Any]] = {}  # quantization profile keys and defaults
    choices: ClassVar[dict[str, tuple[str, ...]]] = {}  # allowed values of string quantization keys

    def profile(self, arch: str, directory: str | Path | None = None) -> Profile:
        """This target's profile (`export/<name>.yaml`) resolved for `arch`."""
        return load_profile(self.name, self.options, self.quantization, arch, directory, self.choices)

    def require(self) -> None:
        """Raise a one-line error naming the pip package when a module this target needs is missing."""
        for module, requirement in self.packages.items():
            if importlib.util.find_spec(module.split(".")[0]) is None:
                raise EdgeSSLError(f"target '{self.name}' needs {requirement}: pip install '{requirement}' "
                                   "(or pip install 'edgessl[export]')")

    def files(self, path: Path) -> list[Path]:
        """Every file making up the artifact at `path` (OpenVINO adds its .bin)."""
        return [path]

    @abstractmethod
    def export(self, model: nn.Module, example: np.ndarray, path: Path, profile: Profile, meta: dict[str, Any],
               calib: np.ndarray | None = None) -> None:
        """Write `model` (eval mode, fp32) to `path`: fp32 when `calib` is None, else int8 post-training quantized
        with the normalized NCHW calibration images `calib`; `meta` goes into the artifact's metadata."""

    def export_qat(self, model: nn.Module, example: np.ndarray, path: Path, profile: Profile, meta: dict[str, Any],
                   calib: np.ndarray, finetune: Finetune) -> None:
        """Write `model` int8 after quantization-aware training: this runtime's quantizer inserts fake quantization
        (ranges initialised on `calib`), `finetune` trains that module (`edgessl.export.qat`), then it is converted."""
        raise EdgeSSLError(f"target '{self.name}' has no quantization-aware training; drop --qat-steps for it")

    @abstractmethod
    def load(self, path: Path, threads: int) -> Runner:
        """A callable running the artifact in this target's own runtime (see the module docstring)."""

    @abstractmethod
    def metadata(self, path: Path) -> dict[str, Any]:
        """The `edgessl` metadata stored with the artifact (empty when there is none)."""

    @abstractmethod
    def float_ops(self, path: Path) -> Counter[str]:
        """Op types that run in float in a loaded int8 artifact: what keeps int8 from paying off."""


def loop_batch(run_one: Callable[[np.ndarray], np.ndarray]) -> Runner:
    """A `Runner` that feeds a batch-1 artifact one image at a time (artifacts are exported for batch 1)."""
    def run(images: np.ndarray) -> np.ndarray:
        images = np.ascontiguousarray(images, dtype=np.float32)
        return np.concatenate([np.asarray(run_one(images[i:i + 1]), dtype=np.float32).reshape(1, -1)
                               for i in range(len(images))])
    return run


def quantize_input(x: np.ndarray, dtype: np.dtype, scale: float, zero_point: int) -> np.ndarray:
    """Float -> integer tensor with the artifact's input quantization (TFLite full-integer inputs)."""
    info = np.iinfo(dtype)
    return np.clip(np.round(x / scale + zero_point), info.min, info.max).astype(dtype)


def dumps(meta: dict[str, Any]) -> str:
    """The metadata as the JSON string stored in an artifact."""
    return json.dumps(meta, sort_keys=True)


def loads(text: str | None) -> dict[str, Any]:
    """Parse stored metadata; missing or foreign metadata reads as empty."""
    try:
        value = json.loads(text) if text else {}
    except json.JSONDecodeError:
        return {}
    return value if isinstance(value, dict) else {}


_OP_PATTERNS = (r"op='([\w.]+)'", r"aten[.:]+\w+", r"torch\.ops\.([\w.]+)", r"\b(?:op|operator)[ :]+['\"`]?([\w.:]+)")


def conversion_error(target: str, exc: BaseException) -> EdgeSSLError:
    """A converter failure as one line naming the op (when the message has one) and what to do."""
    text = re.sub(r"\x1b\[[0-9;]*m", "", str(exc))
    text = " ".join(text.split("## Exception summary")[-1].split()) or type(exc).__name__
    for pattern in _OP_PATTERNS:
        found = re.search(pattern, text)
        if found:
            op = found.group(1) if found.groups() else found.group(0)
            return EdgeSSLError(f"{target} converter cannot handle op '{op}' ({text[:160]}); export another "
                                "target, or pick an architecture without it (docs/benchmarks.md: compatibility matrix)")
    return EdgeSSLError(f"{target} conversion failed: {type(exc).__name__}: {text[:200]}; export another target "
                        "or report the architecture and versions")


def cosine(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Row-wise cosine similarity (0 where a row is all zeros)."""
    norms = np.linalg.norm(a, axis=1) * np.linalg.norm(b, axis=1)
    return (a * b).sum(axis=1) / np.maximum(norms, 1e-12)
