"""Model cards: a Markdown file next to every exported encoder saying what it is, how to feed it, what it was
trained on, how good it is and what produced it -- enough to use the file without the run folder.
"""

from __future__ import annotations

import hashlib
import json
import platform
from importlib import metadata
from pathlib import Path
from typing import Any

# distributions whose versions decide whether an exported file loads and matches (installed ones are listed)
RUNTIME_PACKAGES = ("edgessl", "torch", "torchvision", "timm", "onnx", "onnxruntime", "openvino", "nncf",
                    "ai-edge-litert", "litert-torch")


def recipe_hash(config: dict[str, Any]) -> str:
    """Short, stable id of a resolved recipe: sha256 of its canonical JSON (sorted keys), 12 hex digits."""
    canonical = json.dumps(config, sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(canonical.encode()).hexdigest()[:12]


def runtime_versions() -> dict[str, str]:
    """Python and the installed versions of `RUNTIME_PACKAGES` (without importing them)."""
    versions = {"python": platform.python_version()}
    for name in RUNTIME_PACKAGES:
        try:
            versions[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            continue
    return versions


def _value(v: Any) -> str:
    if isinstance(v, float):
        return f"{v:.4g}"
    if isinstance(v, (list, tuple)):
        return ", ".join(_value(x) for x in v)
    if isinstance(v, dict):
        return json.dumps(v, sort_keys=True, default=str)
    return "unknown" if v is None or v == "" else str(v).replace("|", "\\|").replace("\n", " ")


def _table(rows: dict[str, Any]) -> str:
    lines = ["| | |", "|---|---|"] + [f"| {k} | {_value(v)} |" for k, v in rows.items()]
    return "\n".join(lines)


def write_model_card(path: str | Path, info: dict[str, Any]) -> Path:
    """Write a Markdown model card to `path`; every key of `info` is optional.

    Keys: name; the checkpoint's `encoder` entries (arch, stem_stride, image_size, feature_dim, mean, std);
    method ("<name>: <the loss that trained>"); data (the recipe's data section or a string); recipe_hash, or
    config (the resolved recipe, hashed here);
    epoch; checkpoint; metrics (name -> value, e.g. knn_top1, cosine_mean); export (target, precision, file,
    input layout, calibration, ...); runtimes (name -> version; default: `runtime_versions()`).
    """
    size = info.get("image_size")
    mean, std = info.get("mean"), info.get("std")
    data = info.get("data")
    if isinstance(data, dict):
        data = " ".join(str(data[k]) for k in ("format", "root") if data.get(k)) + (
            f", {data['train_samples']} training images" if data.get("train_samples") else "")
    recipe = info.get("recipe_hash") or (recipe_hash(info["config"]) if isinstance(info.get("config"), dict) else None)
    method = info.get("method") or "a self-supervised method"
    sections = [
        f"# {info.get('name') or info.get('arch') or 'edgessl encoder'}",
        f"Image encoder pretrained self-supervised (no labels) by edgessl with {method}. Output: the pooled "
        "pre-logits feature vector of each image (use L2-normalized features for cosine kNN / retrieval, "
        "or train a linear classifier on them).",
        "## Architecture",
        _table({"architecture": info.get("arch"), "stem stride": info.get("stem_stride"),
                "output": f"(N, {info.get('feature_dim', '?')}) float32 features"}),
        "## Input",
        _table({"size": f"{size} x {size} RGB" if size else None,
                "preprocessing": "scale pixels to [0, 1], then (x - mean) / std per channel",
                "mean": mean, "std": std}),
        "## Training",
        _table({"data": data, "epochs": info.get("epoch"), "recipe hash": recipe,
                "checkpoint": info.get("checkpoint")}),
    ]
    if info.get("metrics"):
        sections += ["## Metrics", _table(info["metrics"])]
    if info.get("export"):
        sections += ["## Export", _table(info["export"])]
    sections += ["## Runtime versions", _table(info.get("runtimes") or runtime_versions())]
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("\n\n".join(sections) + "\n")
    return path
