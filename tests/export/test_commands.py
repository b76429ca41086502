"""`edgessl check`, the default checkpoint, and one-line errors for bad input (export's exit codes: test_table)."""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np
import pytest
import torch

from edgessl.errors import EdgeSSLError
from edgessl.export import TARGETS, get_target
from edgessl.commands.export import newest_checkpoint
from edgessl.export.check_artifact import data_overrides
from edgessl.export.pipeline import export_checkpoint

from .conftest import Exported, cli


@pytest.mark.slow
def test_check_command_reruns_an_artifact(exported: Exported, capsys, monkeypatch) -> None:
    from edgessl.export import pipeline

    artifact = exported.out / "tiny_int8.onnx"
    assert cli("check", str(artifact), "--tolerance", "100") == 0  # kNN of a 60-step model is noise
    table = json.loads(artifact.with_name(artifact.name + ".check.json").read_text())
    assert [r["precision"] for r in table["rows"]] == ["fp32", "int8"]
    monkeypatch.setattr(pipeline, "status", lambda knn_delta, tolerance: "fail")  # a missed tolerance
    assert cli("check", str(artifact)) == 1
    assert "❌ fail" in capsys.readouterr().out


@pytest.mark.slow
def test_export_points_to_qat_when_ptq_misses(checkpoint: Path, tmp_path: Path, capsys, monkeypatch) -> None:
    from edgessl.export import pipeline

    monkeypatch.setattr(pipeline, "status", lambda knn_delta, tolerance: "fail")  # a missed tolerance
    with pytest.warns(UserWarning):  # fewer than 300 calibration images
        code = cli("export", str(checkpoint), "--target", "onnx", "--int8", "--calib", "32", "--out", str(tmp_path))
    assert code == 1
    assert "int8 PTQ missed the tolerance on onnx: add --qat-steps 400" in capsys.readouterr().out


@pytest.mark.slow
def test_check_on_other_data(exported: Exported, tmp_path: Path) -> None:
    """`--data x.npz` replaces the recipe's data (arrays layout of shared/datasets)."""
    rng = np.random.default_rng(0)
    npz = tmp_path / "tiny.npz"
    np.savez(npz, train_images=rng.integers(0, 256, (30, 32, 32, 3), dtype=np.uint8), train_labels=np.arange(30) % 3,
             test_images=rng.integers(0, 256, (12, 32, 32, 3), dtype=np.uint8), test_labels=np.arange(12) % 3)
    artifact = exported.out / "tiny_fp32.tflite"
    assert cli("check", str(artifact), "--data", str(npz), "--tolerance", "0") == 0
    table = json.loads(artifact.with_name(artifact.name + ".check.json").read_text())
    assert table["reference"]["num_train"] == 30 and table["data"]["format"] == "npz"
    assert table["rows"][1]["cosine_min"] > 0.9999


def test_data_overrides(tmp_path: Path) -> None:
    assert data_overrides("x/cifar.npz", "synthetic") == ["data.format=npz", "data.root=x/cifar.npz"]
    assert data_overrides(str(tmp_path), "cifar10") == ["data.format=cifar10", f"data.root={tmp_path}"]
    assert data_overrides(str(tmp_path), "npz")[0] == "data.format=imagefolder"
    with pytest.raises(EdgeSSLError, match="neither a .npz file nor a folder"):
        data_overrides(str(tmp_path / "missing"), "npz")


def test_default_checkpoint_is_the_newest_run(tmp_path: Path) -> None:
    for i, name in enumerate(["b", "a"]):
        (tmp_path / name).mkdir()
        (tmp_path / name / "last.pt").write_bytes(b"")
        os.utime(tmp_path / name / "last.pt", (i, i))
    assert newest_checkpoint(str(tmp_path)) == str(tmp_path / "a" / "last.pt")
    with pytest.raises(EdgeSSLError, match="no checkpoint given and no .*last.pt found"):
        newest_checkpoint(str(tmp_path / "none"))


def test_not_an_encoder_checkpoint(tmp_path: Path) -> None:
    path = tmp_path / "weights.pt"
    torch.save({"state_dict": {"w": torch.zeros(1)}}, path)
    with pytest.raises(EdgeSSLError, match="is not an edgessl checkpoint"):
        export_checkpoint(path, ["onnx"], ["fp32"], tmp_path / "out")
    assert cli("export", str(path), "--target", "onnx", "--out", str(tmp_path / "out")) == 2


def test_unknown_target_lists_valid_ones(checkpoint: Path, tmp_path: Path) -> None:
    with pytest.raises(EdgeSSLError, match="unknown export target 'coreml'; choose from: onnx, openvino, tflite"):
        get_target("coreml")
    assert cli("export", str(checkpoint), "--target", "onnx,coreml", "--out", str(tmp_path)) == 2
    assert not any(tmp_path.iterdir())


def test_missing_runtime_names_the_pip_package(monkeypatch: pytest.MonkeyPatch) -> None:
    import edgessl.export.base as base

    real = base.importlib.util.find_spec
    monkeypatch.setattr(base.importlib.util, "find_spec", lambda name, *a: None if name == "openvino" else real(name))
    with pytest.raises(EdgeSSLError, match=r"target 'openvino' needs openvino==2026.4.1: pip install"):
        TARGETS["openvino"].require()
    TARGETS["onnx"].require()


class _Zeta(torch.nn.Module):
    """An op no exporter here translates (aten.special_zeta)."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.special.zeta(x.abs() + 2, torch.tensor(2.0)).mean((2, 3))


@pytest.mark.parametrize("target", ["onnx", "openvino"])
def test_unconvertible_op_is_named(target: str, tmp_path: Path) -> None:
    t = TARGETS[target]
    with pytest.raises(EdgeSSLError, match=r"converter cannot handle op '.*zeta") as info:
        t.export(_Zeta().eval(), np.ones((1, 3, 8, 8), np.float32), tmp_path / f"zeta{t.suffix}",
                 t.profile("mobilenetv3_small_100"), {})
    assert "\n" not in str(info.value)


def test_failed_export_leaves_nothing_behind(checkpoint: Path, tmp_path: Path, monkeypatch) -> None:
    def broken(self, model, example, path, profile, meta, calib=None):
        path.write_bytes(b"half an artifact")
        raise EdgeSSLError("onnx converter cannot handle op 'aten.frobnicate'")

    monkeypatch.setattr(type(TARGETS["onnx"]), "export", broken)
    with pytest.raises(EdgeSSLError, match="frobnicate"):
        export_checkpoint(checkpoint, ["onnx"], ["fp32"], tmp_path, log=lambda line: None)
    assert list(tmp_path.iterdir()) == []


def test_export_of_another_checkpoint_is_not_overwritten(checkpoint: Path, tmp_path: Path) -> None:
    """Same name, other checkpoint: refused before anything is written; `--name` keeps both."""
    table = tmp_path / "tiny_benchmark.json"
    table.write_text(json.dumps({"checkpoint": str(tmp_path / "other" / "last.pt")}))
    with pytest.raises(EdgeSSLError, match="already holds an export named 'tiny' of another checkpoint.*--name"):
        export_checkpoint(checkpoint, ["onnx"], ["fp32"], tmp_path)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["tiny_benchmark.json"]
    assert cli("export", str(checkpoint), "--target", "onnx", "--fp32", "--out", str(tmp_path), "--name", "b") == 0
    assert (tmp_path / "b_fp32.onnx").is_file()
    assert json.loads((tmp_path / "b_benchmark.json").read_text())["checkpoint"] == str(checkpoint)
    export_checkpoint(checkpoint, ["onnx"], ["fp32"], tmp_path, name="b")  # the same checkpoint again: overwrites
