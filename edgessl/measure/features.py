"""Frozen-encoder features for kNN, the linear probe and embedding plots.

Called through `knn_top1` by the training engine's kNN monitor, `edgessl eval`, `prune` and the export check, and by
`edgessl report`, so it keeps the features on the compute device until the end (one host copy, no per-batch sync)
and restores the model's train/eval mode. `model` may also be any callable (an exported artifact's runner).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable

import torch
import torch.nn.functional as F
from torch import nn
from tqdm import tqdm

from edgessl.errors import EdgeSSLError

AMP_DTYPES = {"bf16": torch.bfloat16, "fp16": torch.float16}


@torch.no_grad()
def extract_features(model: nn.Module | Callable[[torch.Tensor], torch.Tensor], loader: Iterable,
                     device: str | torch.device, amp: str = "none", progress: bool = True, normalize: bool = True,
                     on_device: bool = False) -> tuple[torch.Tensor, torch.Tensor]:
    """Run `model` in eval mode over `loader` ((images, labels) batches) -> (float32 features, int64 labels) on CPU,
    or left on `device` with `on_device=True` (the pretraining kNN monitor ranks them there).

    `normalize=True` L2-normalizes each feature (kNN, cosine); the linear probe wants the raw pooled features.
    `amp` is "none", "bf16" or "fp16" (autocast on `device`); features are cast back to float32.
    """
    device = torch.device(device)
    if amp not in ("none", *AMP_DTYPES):
        raise ValueError(f"amp must be none, bf16 or fp16; got {amp!r}")
    module = model if isinstance(model, nn.Module) else None
    was_training = module is not None and module.training
    if module is not None:
        module.eval()
    feats, labels = [], []
    try:
        for batch in tqdm(loader, desc="features", unit="batch", disable=not progress, leave=False):
            images, targets = batch[0], batch[1]
            images = images.to(device, non_blocking=True)
            with torch.autocast(device.type, dtype=AMP_DTYPES.get(amp), enabled=amp != "none"):
                out = model(images)
            out = out.flatten(1).float()
            feats.append(F.normalize(out, dim=1) if normalize else out)
            labels.append(torch.as_tensor(targets, dtype=torch.int64))
    finally:
        if module is not None:
            module.train(was_training)
    if not feats:
        raise EdgeSSLError("no images to extract features from: the dataset split is empty")
    out = device if on_device else torch.device("cpu")
    return torch.cat(feats).to(out), torch.cat(labels).to(out)


def resolve_num_classes(train_labels: torch.Tensor, test_labels: torch.Tensor, num_classes: int | None) -> int:
    """`num_classes`, or 1 + the largest label; refuses unlabelled items (label -1, e.g. STL-10's unlabelled split)."""
    if min(int(train_labels.min()), int(test_labels.min())) < 0:
        raise EdgeSSLError("labels contain -1 (unlabelled images); evaluate on labelled data only "
                           "(build_dataset(..., labelled=True))")
    return num_classes or int(max(train_labels.max(), test_labels.max())) + 1
