"""Consumer checks: default ONNX exports agree in OpenCV DNN; a consumer that disagrees fails its row."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch

from edgessl.errors import EdgeSSLError
from edgessl.export import consumers, get_target
from edgessl.export.base import METADATA_KEY, dumps
from edgessl.export.check import cosine, torch_runner
from edgessl.export.consumers import CONSUMERS, resolve
from edgessl.models import build_backbone

from .conftest import Exported, cli, shapes

needs_opencv = pytest.mark.skipif(not CONSUMERS["opencv"].installed(),
                                  reason="opencv-python-headless not installed (pip install 'edgessl[consumers]')")


def test_resolve_names_and_errors(monkeypatch: pytest.MonkeyPatch) -> None:
    assert resolve("none", ["onnx"]) == [] and resolve("", ["onnx"]) == []
    with pytest.raises(EdgeSSLError, match="unknown consumer 'cuda'.*opencv"):
        resolve("cuda", ["onnx"])
    with pytest.raises(EdgeSSLError, match="reads onnx artifacts, not tflite"):
        resolve("opencv", ["tflite"]) if CONSUMERS["opencv"].installed() else pytest.skip("opencv not installed")


def test_missing_consumer_package(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(consumers.Consumer, "installed", lambda self: False)
    logged: list[str] = []
    assert resolve("auto", ["onnx"], logged.append) == []
    assert logged and "opencv-python-headless" in logged[0] and "skipped" in logged[0]
    assert resolve("auto", ["tflite"], logged.append) == [] and len(logged) == 1  # nothing to skip for TFLite
    with pytest.raises(EdgeSSLError, match=r"pip install 'opencv-python-headless==[\d.]+'"):
        resolve("opencv", ["onnx"])


def tiny_encoder(arch: str) -> torch.nn.Module:
    """A tiny seeded encoder with non-trivial BN statistics (16 px input, stride-1 stem)."""
    torch.manual_seed(0)
    model = build_backbone(arch, stem_stride=1).eval()
    for m in model.modules():
        if isinstance(m, torch.nn.modules.batchnorm._BatchNorm):
            m.running_mean.uniform_(-0.1, 0.1)
            m.running_var.uniform_(0.5, 1.5)
    return model


@needs_opencv
@pytest.mark.slow
@pytest.mark.parametrize("arch", ["mobilenetv3_small_100", "efficientnet_lite0"])
def test_default_onnx_export_agrees_in_opencv(arch: str, tmp_path: Path) -> None:
    """fp32: OpenCV gives PyTorch's embeddings (cosine > 0.9999); int8: OpenCV gives ONNX Runtime's (> 0.999:
    the two round the requantization differently) and is as close to PyTorch as ONNX Runtime is."""
    target, model = get_target("onnx"), tiny_encoder(arch)
    images = torch.randn(24, 3, 16, 16).numpy()
    ref = torch_runner(model)(images)
    profile = target.profile(arch)
    for precision in ("fp32", "int8"):
        path = tmp_path / f"{precision}.onnx"
        target.export(model, images[:1], path, profile, {}, images if precision == "int8" else None)
        ort, opencv = target.load(path, 1)(images), CONSUMERS["opencv"].load(path, 1)(images)
        if precision == "fp32":
            assert cosine(opencv, ref).min() > 0.9999
        else:
            assert cosine(opencv, ort).mean() > 0.999
            assert abs(cosine(opencv, ref).mean() - cosine(ort, ref).mean()) < 2e-3
    meta = target.metadata(path)
    assert meta["exporter"] == "torch.onnx (dynamo)" and meta["opset"] == 18 and meta["producer"].startswith("pytorch")
    assert any("GlobalAveragePool" in r for r in meta["rewrites"])


@needs_opencv
@pytest.mark.slow
def test_check_with_opencv_adds_a_passing_row(exported: Exported) -> None:
    artifact = exported.out / "tiny_fp32.onnx"
    assert cli("check", str(artifact), "--consumers", "opencv", "--tolerance", "100") == 0
    table = json.loads(artifact.with_name(artifact.name + ".check.json").read_text())
    row = table["rows"][2]
    assert row["runtime"].startswith("opencv 5.") and row["status"] == "pass" and row["cosine_min"] > 0.9999
    assert row["note"].startswith("vs onnxruntime on the same file: cosine 1.0000")
    card = (exported.out / "tiny_fp32.onnx.md").read_text()
    assert "opset" in card and "dynamo" in card and "opencv" in card


@needs_opencv
@pytest.mark.slow
def test_a_disagreeing_consumer_fails_its_row(checkpoint: Path, tmp_path: Path, capsys) -> None:
    """The dynamo exporter's raw MobileNetV3 graph (no portability rewrite) runs in OpenCV with wrong embeddings."""
    import onnx

    from edgessl.models.encoder_loading import load_encoder

    model = load_encoder(checkpoint)[0].eval()
    raw = tmp_path / "raw_fp32.onnx"
    torch.onnx.export(model, (shapes(1)[0],), str(raw), input_names=["input"], output_names=["embedding"],
                      opset_version=18, dynamo=True, report=False, verbose=False)
    proto = onnx.load(str(raw))
    onnx.helper.set_model_props(proto, {METADATA_KEY: dumps({"checkpoint": str(checkpoint), "precision": "fp32"})})
    onnx.save(proto, str(raw))
    assert cli("check", str(raw), "--consumers", "opencv", "--tolerance", "100") == 1
    rows = json.loads(raw.with_name(raw.name + ".check.json").read_text())["rows"]
    assert rows[1]["status"] == "pass" and rows[1]["cosine_min"] > 0.9999  # ONNX Runtime runs it right
    assert rows[2]["status"] == "fail" and rows[2]["cosine_mean"] < 0.99
    assert rows[2]["note"].startswith("opencv disagrees with onnxruntime: cosine to PyTorch 0.")
    assert "❌ fail" in capsys.readouterr().out
    assert np.isfinite(rows[2]["knn_top1"])


def _crashing_load(path: Path, threads: int):
    """A consumer that dies by a signal on load, as OpenCV 5.1.0 does on RepViT's and FastViT's ONNX."""
    import os

    os.abort()


def test_a_crashing_consumer_fails_its_row_and_the_check_goes_on(exported: Exported, monkeypatch) -> None:
    crashing = consumers.Consumer("crashy", "numpy", "numpy", "numpy", ("onnx",), _crashing_load)
    monkeypatch.setitem(CONSUMERS, "crashy", crashing)
    artifact = exported.out / "tiny_fp32.onnx"
    assert cli("check", str(artifact), "--consumers", "crashy", "--tolerance", "100") == 1
    rows = json.loads(artifact.with_name(artifact.name + ".check.json").read_text())["rows"]
    assert rows[1]["status"] == "pass"  # ONNX Runtime's row is measured as before
    assert rows[2]["status"] == "fail" and rows[2]["cosine_mean"] is None  # nothing measured: null, not NaN
    assert rows[2]["note"] == "crashy crashed on this file (SIGABRT); do not deploy this file with crashy"
