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
