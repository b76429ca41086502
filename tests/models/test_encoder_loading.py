"""Recipes from a checkpoint's config dict, and a trained encoder with its recipe from one read of the file."""

import pytest

from edgessl.config import Config, config_from_dict
from edgessl.errors import EdgeSSLError
from edgessl.checkpoint import Checkpoint
from edgessl.models.encoder_loading import load_trained_encoder


def test_config_from_dict_applies_overrides_without_touching_the_input():
    stored = Config().to_dict()
    cfg = config_from_dict(stored, ["data.root=/elsewhere", "knn.k=7"], source="ckpt")
    assert cfg.data.root == "/elsewhere" and cfg.knn.k == 7
    assert stored["data"]["root"] == "" and stored["knn"]["k"] == 200
    with pytest.raises(EdgeSSLError, match="ckpt: unknown config key 'bogus'"):
        config_from_dict({"bogus": 1}, source="ckpt")
    with pytest.raises(EdgeSSLError, match="override: .*knn.k"):
        config_from_dict(stored, ["knn.k=0"])


def test_load_trained_encoder_reads_the_file_once(tmp_path, monkeypatch):
    from edgessl.models.registry import build_backbone

    state = {f"student.backbone.{k}": v for k, v in build_backbone("mobilenetv3_small_100", 1).state_dict().items()}
    Checkpoint(Config().to_dict(), {"arch": "mobilenetv3_small_100", "stem_stride": 1}, state, epoch=2).save(
        tmp_path / "last.pt")
    reads = []
    real = Checkpoint.load.__func__
    monkeypatch.setattr(Checkpoint, "load", classmethod(lambda cls, p: reads.append(p) or real(cls, p)))
    enc = load_trained_encoder(tmp_path, ["knn.k=7"])
    assert len(reads) == 1 and enc.epoch == 2 and enc.cfg.knn.k == 7 and not enc.model.training


@pytest.mark.parametrize("recorded", [None, {"pad_type": ""}])
def test_an_encoder_loads_with_the_timm_options_its_checkpoint_recorded(tmp_path, recorded):
    """A checkpoint written before edgessl recorded timm options (None: tf_ models then had TF padding) loads as
    it was trained, and one that recorded them loads with those; the weights fit either way, the function not."""
    import torch

    from edgessl.models.encoder_loading import load_encoder
    from edgessl.models.registry import build_backbone

    arch = "tf_mobilenetv3_small_minimal_100"
    trained = build_backbone(arch, 1, recorded or {}).eval()
    state = {f"student.backbone.{k}": v for k, v in trained.state_dict().items()}
    info = {"arch": arch, "stem_stride": 1, **({"timm_kwargs": recorded} if recorded is not None else {})}
    Checkpoint(Config().to_dict(), info, state, epoch=1).save(tmp_path / "last.pt")
    model, _ = load_encoder(tmp_path / "last.pt")
    x = torch.randn(2, 3, 32, 32)
    with torch.no_grad():
        assert torch.allclose(model(x), trained(x), atol=1e-5)
