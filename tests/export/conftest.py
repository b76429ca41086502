"""Shared fixtures: a briefly trained tiny encoder checkpoint and one export of it to every target.

int8 needs trained weights: with random-init BN statistics the activation ranges mean nothing and int8 cosine is
arbitrary. The encoder here is trained supervised for a few dozen steps on the built-in synthetic shapes, then
its BN statistics are re-estimated on the same images (as after a real run), in edgessl's checkpoint layout.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import torch

from edgessl.cli import main
from edgessl.config import Config, load_config
from edgessl.data import MEAN, STD, SyntheticShapes, eval_transform
from edgessl.export.calibration import CalibrationWarning
from edgessl.checkpoint import RunFolder
from edgessl.models import build_backbone, feature_dim

ARCH, SIZE = "mobilenetv3_small_100", 32
RECIPE = ["name=tiny", "data.format=synthetic", f"data.image_size={SIZE}", "data.synthetic_train=200",
          "data.synthetic_test=100", "data.num_workers=0", f"model.arch={ARCH}", "model.stem_stride=1", "knn.k=20"]
STEPS, BATCH, LR = 60, 32, 0.02  # lr 0.1 left heavier-tailed activations (int8 cosine 0.86 vs 0.95)
CALIB = 64  # calibration images in tests (the < 300 warning is expected)


def shapes(n: int) -> tuple[torch.Tensor, torch.Tensor]:
    """`n` synthetic-shape images through the eval transform, and their labels."""
    source, transform = SyntheticShapes("train", n, SIZE, seed=1), eval_transform(SIZE)
    items = [source[i] for i in range(n)]
    return torch.stack([transform(img) for img, _ in items]), torch.tensor([y for _, y in items])


def train_encoder(steps: int = STEPS) -> torch.nn.Module:
    """A few dozen supervised SGD steps, then BN statistics re-estimated in train mode: realistic int8 ranges.

    One thread: on a shared 2-core machine, multi-threaded training measured up to 10x slower."""
    torch.manual_seed(0)
    model = build_backbone(ARCH, stem_stride=1)
    head = torch.nn.Linear(feature_dim(model), 10)
    images, labels = shapes(512)
    params = list(model.parameters()) + list(head.parameters())
    opt = torch.optim.SGD(params, lr=LR, momentum=0.9, weight_decay=5e-4)
    model.train()
    for _ in range(steps):
        idx = torch.randint(0, len(images), (BATCH,))
        loss = torch.nn.functional.cross_entropy(head(model(images[idx])), labels[idx])
        opt.zero_grad()
        loss.backward()
        opt.step()
    for m in model.modules():
        if isinstance(m, torch.nn.modules.batchnorm._BatchNorm):
            m.reset_running_stats()
            m.momentum = None  # cumulative average over the batches below
    with torch.no_grad():
        for chunk in images.split(128):
            model(chunk)
    return model.eval()


def save_checkpoint(model: torch.nn.Module, cfg: Config, path: Path) -> Path:
    """The encoder in the layout `edgessl.models.encoder_loading.load_encoder` reads."""
    encoder = {"arch": ARCH, "stem_stride": 1, "image_size": SIZE, "feature_dim": feature_dim(model),
               "mean": list(MEAN), "std": list(STD)}
    torch.save({"edgessl": 1, "config": cfg.to_dict(), "encoder": encoder, "epoch": 1, "step": STEPS,
                "model": {f"student.backbone.{k}": v for k, v in model.state_dict().items()}}, path)
    cfg.save(path.parent / "config.yaml")  # as in a run folder
    return path


@pytest.fixture(scope="session")
def checkpoint(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A briefly trained encoder's checkpoint (see the module docstring)."""
    path = tmp_path_factory.mktemp("run") / "last.pt"
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        return save_checkpoint(train_encoder(), load_config(None, RECIPE), path)
    finally:
        torch.set_num_threads(threads)


def cli(name: str, *argv: str) -> int:
    """Run `edgessl NAME ARGV...` through the real entry point (EdgeSSLError -> exit code 2)."""
    return main([name, *argv])


@dataclass
class Exported:
    """One `edgessl export` run: its exit code, output folder, table (the JSON) and the run folder's copy of it.

    The copy is read right after the export, as later tests export the same checkpoint and replace it."""

    code: int
    out: Path
    table: dict[str, Any]
    run_table: dict[str, Any]

    def row(self, target: str, precision: str) -> dict[str, Any]:
        return next(r for r in self.table["rows"] if r["target"] == target and r["precision"] == precision)


@pytest.fixture(scope="session")
def exported(checkpoint: Path, tmp_path_factory: pytest.TempPathFactory) -> Exported:
    """`edgessl export CKPT` to every target, fp32 and int8 (the slow part, shared by the tests).

    Every artifact is made to miss its tolerance (the tolerance test answers "fail"; a negative --tolerance is
    refused), so the same run also shows that a failed tolerance gives exit code 1 while all artifacts and the
    table are still written."""
    from edgessl.export import pipeline

    out = tmp_path_factory.mktemp("exported")
    with pytest.MonkeyPatch.context() as patch, pytest.warns(CalibrationWarning, match=f"only {CALIB} images"):
        patch.setattr(pipeline, "status", lambda knn_delta, tolerance: "fail")
        code = cli("export", str(checkpoint), "--out", str(out), "--calib", str(CALIB))
    return Exported(code, out, json.loads((out / "tiny_benchmark.json").read_text()),
                    json.loads((checkpoint.parent / RunFolder.EXPORT_TABLE).read_text()))
