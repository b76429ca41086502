"""Evaluate a trained encoder: features of the train and test splits extracted once, then weighted kNN and/or a
linear probe on them; the results are written to `eval.json` beside the checkpoint."""

from __future__ import annotations

import json
from collections.abc import Sequence
from datetime import datetime
from pathlib import Path
from typing import Any

import torch

from edgessl.evaluation.features import extract_features
from edgessl.evaluation.knn import knn_classify
from edgessl.evaluation.linear_probe import linear_probe
from edgessl.evaluation.loading import eval_loader, load_trained_encoder

EVAL_FILE = "eval.json"


def evaluate(path: str | Path, knn: bool = True, linear: bool = True, k: int | None = None,
             temperature: float | None = None, epochs: int = 100, lr: float = 0.2,
             overrides: Sequence[str] = (), branch: str = "student", progress: bool = True) -> dict[str, Any]:
    """kNN (k and temperature default to the recipe's `knn.*`) and/or linear-probe accuracy of a checkpoint.

    `path` is a run folder or a checkpoint file; `overrides` are `key=value` changes to its stored recipe
    (e.g. data.root=..., train.device=cpu). Returns what it writes to `<checkpoint folder>/eval.json`.
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
    loaders = {split: eval_loader(cfg, split) for split in ("train", "test")}
    classes = num_classes(loaders["train"].dataset)
    # raw pooled features once: the probe uses them as they are, kNN normalizes them itself
    train, test = (extract_features(model, loaders[split], device, cfg.train.amp, progress, normalize=False)
                   for split in ("train", "test"))
    result: dict[str, Any] = {
        "checkpoint": str(enc.path.resolve()), "epoch": enc.epoch, "branch": branch,
        "arch": enc.info["arch"], "image_size": cfg.data.image_size, "feature_dim": int(train[0].shape[1]),
        "data": {"format": cfg.data.format, "root": cfg.data.root, "train": len(train[1]), "test": len(test[1])},
        "created": datetime.now().isoformat(timespec="seconds"),
    }
    if knn:
        result["knn"] = knn_classify(*train, *test, k=cfg.knn.k if k is None else k, num_classes=classes,
                                     temperature=cfg.knn.temperature if temperature is None else temperature)
    if linear:
        result["linear"] = linear_probe(*train, *test, epochs=epochs, lr=lr, num_classes=classes, seed=cfg.train.seed,
                                        progress=progress)
    enc.path.with_name(EVAL_FILE).write_text(json.dumps(result, indent=2) + "\n")
    return result
