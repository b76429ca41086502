"""The checkpoint format's owner: run-folder names, checkpoint lookup, save/load round trip, old-file reading."""

import pytest
import torch

from edgessl.checkpoint import Checkpoint, RunFolder, checkpoint_path, save_atomic
from edgessl.errors import EdgeSSLError


def test_checkpoint_path_accepts_a_run_folder_or_a_pt_file(tmp_path):
    (tmp_path / "last.pt").write_bytes(b"")
    (tmp_path / "epoch3.pt").write_bytes(b"")
    assert checkpoint_path(tmp_path) == tmp_path / "last.pt" == RunFolder(tmp_path).last
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


def test_save_load_round_trip_and_pruning_entry(tmp_path):
    ckpt = Checkpoint({"name": "x"}, {"arch": "a"}, {"student.backbone.w": torch.ones(2)}, epoch=3, step=7,
                      distill={"arch": "resnet18"})
    ckpt.save(tmp_path / "last.pt")
    back = Checkpoint.load(tmp_path / "last.pt")
    assert (back.epoch, back.step, back.distill, back.path) == (3, 7, {"arch": "resnet18"}, tmp_path / "last.pt")
    assert list(back.encoder_state()) == ["w"] and torch.equal(back.encoder_state()["w"], torch.ones(2))
    assert back.encoder_state("teacher") == {}
    assert "pruning" not in ckpt.to_dict()
    assert Checkpoint({}, {}, {}, pruning={"s": 1}).to_dict()["pruning"] == {"s": 1}


def test_reads_files_from_before_the_distill_rename_and_refuses_others(tmp_path):
    save_atomic({"edgessl": 1, "config": {}, "encoder": {}, "model": {}, "teacher": {"arch": "resnet18"}},
                tmp_path / "old.pt")
    assert Checkpoint.load(tmp_path / "old.pt").distill == {"arch": "resnet18"}
    save_atomic({"weights": torch.ones(1)}, tmp_path / "other.pt")
    with pytest.raises(EdgeSSLError, match="not an edgessl checkpoint"):
        Checkpoint.load(tmp_path / "other.pt")
