"""Checkpoint lookup and recipes from a checkpoint's config dict."""

import pytest

from edgessl.config import Config, config_from_dict
from edgessl.errors import EdgeSSLError
from edgessl.evaluation.loading import checkpoint_path


def test_checkpoint_path_accepts_a_run_folder_or_a_pt_file(tmp_path):
    (tmp_path / "last.pt").write_bytes(b"")
    (tmp_path / "epoch3.pt").write_bytes(b"")
    assert checkpoint_path(tmp_path) == tmp_path / "last.pt"
    assert checkpoint_path(tmp_path / "epoch3.pt") == tmp_path / "epoch3.pt"


@pytest.mark.parametrize("make, message", [
    (lambda p: p.mkdir(), "has no last.pt"),
    (lambda p: None, "not found"),
    (lambda p: p.write_text("x"), "neither a run folder nor a checkpoint"),
])
def test_checkpoint_path_errors_are_one_line(tmp_path, make, message):
    path = tmp_path / "thing"
    make(path)
    with pytest.raises(EdgeSSLError, match=message) as exc:
        checkpoint_path(path)
    assert "\n" not in str(exc.value)


def test_config_from_dict_applies_overrides_without_touching_the_input():
    stored = Config().to_dict()
    cfg = config_from_dict(stored, ["data.root=/elsewhere", "knn.k=7"], source="ckpt")
    assert cfg.data.root == "/elsewhere" and cfg.knn.k == 7
    assert stored["data"]["root"] == "" and stored["knn"]["k"] == 200
    with pytest.raises(EdgeSSLError, match="ckpt: unknown config key 'bogus'"):
        config_from_dict({"bogus": 1}, source="ckpt")
    with pytest.raises(EdgeSSLError, match="override: .*knn.k"):
        config_from_dict(stored, ["knn.k=0"])
