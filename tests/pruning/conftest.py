"""Shared fixtures: real edgessl checkpoints of the tiny config, written before any step (fast; pruning, reloading
and exporting do not need trained weights)."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.tiny_run import tiny


def encoder_checkpoint(directory: Path, *overrides: str) -> Path:
    """`Trainer.save` of the tiny config with `overrides`, untrained: a checkpoint laid out as `edgessl pretrain`
    writes it."""
    from edgessl.engine.trainer import Trainer

    Trainer(tiny(directory, "train.knn_every=0", *overrides)).save()
    return directory / "last.pt"


@pytest.fixture(scope="session")
def mnv3_checkpoint(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """mobilenetv3_small_100, stem stride 1, 16 px."""
    return encoder_checkpoint(tmp_path_factory.mktemp("mnv3"), "model.stem_stride=1")
