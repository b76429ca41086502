"""Evaluate a trained encoder: features of the train and test splits extracted once, then weighted kNN and/or a
linear probe on them; the results are written to `eval.json` beside the checkpoint."""

from __future__ import annotations

import json
from collections.abc import Sequence
from datetime import datetime
from pathlib import Path
from typing import Any

import torch

from edgessl.checkpoint import RunFolder
from edgessl.measure.knn import knn_top1
from edgessl.measure.linear_probe import linear_probe
from edgessl.measure.loaders import eval_loaders
from edgessl.models.encoder_loading import load_trained_encoder

SAME_WEIGHTS = ("checkpoint", "epoch", "branch", "arch", "image_size", "data")  # what eval.json results must share


def evaluate(path: str | Path, knn: bool = True, linear: bool = True, k: int | None = None,
             temperature: float | None = None, epochs: int = 100, lr: float = 0.2,
             overrides: Sequence[str] = (), branch: str = "student", progress: bool = True) -> dict[str, Any]:
    """kNN (k and temperature default to the recipe's `knn.*`) and/or linear-probe accuracy of a checkpoint.

    `path` is a run folder or a checkpoint file; `overrides` are `key=value` changes to its stored recipe
    (e.g. data.root=..., train.device=cpu). Returns this evaluation's results; `<checkpoint folder>/eval.json`
    gets them merged with earlier results of the same weights (`_with_previous`).
    """
    from edgessl.data import num_classes
    from edgessl.engine.runtime import check_amp, resolve_device

    enc = load_trained_encoder(path, overrides, branch)
    cfg = enc.cfg
    if cfg.train.threads:
        torch.set_num_threads(cfg.train.threads)
    device = resolve_device(cfg.train.device)
    check_amp(cfg.train.amp, device)
    model = enc.model.to(device)
    loaders = eval_loaders(cfg, pin_memory=device.type == "cuda")
    classes = num_classes(loaders[0].dataset)
    # raw pooled features once, ranked on the device (the GPU if any: on one CPU thread ImageNet takes hours,
    # benchmarks/knn_monitor.py); kNN normalizes them itself, the probe reuses them as they are
    scores = knn_top1(model, loaders, k=cfg.knn.k if k is None else k, device=device, amp=cfg.train.amp,
                      temperature=cfg.knn.temperature if temperature is None else temperature, progress=progress,
                      num_classes=classes, on_device=True)
    train, test = ((feats.cpu(), labels.cpu()) for feats, labels in (scores.train, scores.test))
    result: dict[str, Any] = {
        "checkpoint": str(enc.path.resolve()), "epoch": enc.epoch, "branch": branch,
        "arch": enc.info["arch"], "image_size": cfg.data.image_size, "feature_dim": int(train[0].shape[1]),
        "data": {"format": cfg.data.format, "root": cfg.data.root, "train": len(train[1]), "test": len(test[1])},
        "created": datetime.now().isoformat(timespec="seconds"),
    }
    if knn:
        result["knn"] = scores.scores
    if linear:
        result["linear"] = linear_probe(*train, *test, epochs=epochs, lr=lr, num_classes=classes, seed=cfg.train.seed,
                                        progress=progress)
    out = enc.path.with_name(RunFolder.EVAL)
    out.write_text(json.dumps(_with_previous(out, result), indent=2) + "\n")
    return result


def _with_previous(path: Path, result: dict[str, Any]) -> dict[str, Any]:
    """`result` plus the metrics an earlier eval of the same weights (checkpoint, epoch, branch, data) wrote and
    this one did not recompute, each with the settings it was computed with: `eval --knn` then `eval --linear`
    keeps both. Results of other weights are dropped, not mixed in."""
    try:
        old = json.loads(path.read_text())
    except (OSError, ValueError):
        return result
    if not isinstance(old, dict) or any(old.get(key) != result[key] for key in SAME_WEIGHTS):
        return result
    return {**result, **{m: old[m] for m in ("knn", "linear") if m in old and m not in result}}
