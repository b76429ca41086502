"""Shared pytest fixtures."""

from pathlib import Path

import pytest

SHARED_DATASETS = Path(__file__).resolve().parents[1].parent / "shared" / "datasets"


@pytest.fixture
def shared_datasets() -> Path:
    """`../shared/datasets` beside the checkout (real image files); skips the test when it is absent."""
    if not SHARED_DATASETS.is_dir():
        pytest.skip(f"../shared/datasets not found (looked in {SHARED_DATASETS})")
    return SHARED_DATASETS


@pytest.fixture(scope="session")
def tiny_checkpoint(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """An untrained checkpoint of the tiny run (`tests.tiny_run`) in its run folder (last.pt + config.yaml), as
    `edgessl pretrain` writes it; for commands that read a checkpoint without needing trained weights."""
    from edgessl.engine.trainer import Trainer
    from tests.tiny_run import tiny

    folder = tmp_path_factory.mktemp("tiny-run")
    trainer = Trainer(tiny(folder, "train.knn_every=0"))
    trainer.save()
    trainer.cfg.save(folder / "config.yaml")
    return folder / "last.pt"
