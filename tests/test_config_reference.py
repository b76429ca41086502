"""docs/config.md is generated from the config schema (`edgessl.config_reference`): it fails when it is stale."""

from pathlib import Path

from edgessl.config_reference import REWRITE, reference_markdown

DOC = Path(__file__).resolve().parents[1] / "docs" / "config.md"


def test_config_reference_is_up_to_date():
    assert DOC.read_text() == reference_markdown(), f"docs/config.md is stale: run {REWRITE}"


def test_every_key_is_listed():
    from edgessl.config import Config, _keys

    text = DOC.read_text()
    leaves = [k for k in _keys(Config) if k.count(".") == 1 or k in ("name", "output_dir", "method")]
    assert all(f"`{k}`" in text for k in leaves)
