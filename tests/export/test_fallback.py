"""The float fallback for ONNX Runtime int8: a named node stays float (and the artifact still passes
`edgessl check`), and the measured fallback picks the most sensitive node itself."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import onnx
import pytest
import torch

from edgessl.export.onnx_target import OnnxTarget
from edgessl.export.profiles import PROFILE_DIR

from .conftest import cli, shapes


def _float_inputs(path: Path, name: str) -> bool:
    """True when Conv `name` is in the graph with its weight a float initializer (not a DequantizeLinear output):
    ORT then cannot fuse it into an int8 kernel, so it runs in float."""
    graph = onnx.load(str(path)).graph
    node = next((n for n in graph.node if n.name == name), None)
    floats = {i.name for i in graph.initializer if i.data_type == onnx.TensorProto.FLOAT}
    return node is not None and node.input[1] in floats


def _conv_after_stem(model: torch.nn.Module, tmp: Path) -> str:
    """The name of the second Conv of the graph ORT quantizes (exported and pre-processed as the target does); the
    first, the stem, is float by the profile's `float_stem`."""
    from onnxruntime.quantization.shape_inference import quant_pre_process

    torch.onnx.export(model, (shapes(1)[0],), str(tmp / "g.onnx"), input_names=["input"], dynamo=True,
                      opset_version=18, verbose=False, report=False)
    quant_pre_process(str(tmp / "g.onnx"), str(tmp / "p.onnx"))
    return [n.name for n in onnx.load(str(tmp / "p.onnx")).graph.node if n.op_type == "Conv"][1]


@pytest.mark.slow
def test_named_node_stays_float_and_check_passes(checkpoint: Path, tmp_path: Path) -> None:
    from edgessl.models.encoder_loading import load_encoder

    name = _conv_after_stem(load_encoder(checkpoint)[0].eval(), tmp_path)
    profiles = tmp_path / "profiles"
    profiles.mkdir()
    text = (PROFILE_DIR / "onnx.yaml").read_text().replace("keep_float_nodes: []", f"keep_float_nodes: [{name}]")
    (profiles / "onnx.yaml").write_text(text)
    out = tmp_path / "out"
    with pytest.warns(UserWarning):
        code = cli("export", str(checkpoint), "--target", "onnx", "--int8", "--calib", "32", "--out", str(out),
                   "--profiles", str(profiles), "--tolerance", "100")
    assert code == 0
    artifact = out / "tiny_int8.onnx"
    assert _float_inputs(artifact, name)
    assert OnnxTarget().metadata(artifact)["float_nodes"] == [name]
    row = json.loads((out / "tiny_benchmark.json").read_text())["rows"][-1]
    assert row["method"] == "ptq+fallback"
    assert cli("check", str(artifact), "--tolerance", "100") == 0


class _Tiny(torch.nn.Module):
    """conv -> relu -> conv -> pool: a graph small enough to rank every node in a test."""

    def __init__(self) -> None:
        super().__init__()
        self.a, self.b = torch.nn.Conv2d(3, 8, 3, padding=1), torch.nn.Conv2d(8, 16, 3, padding=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.b(torch.relu(self.a(x))).mean((2, 3))


def test_measured_fallback_keeps_the_most_sensitive_node_float(tmp_path: Path) -> None:
    torch.manual_seed(0)
    images = shapes(24)[0].numpy()
    target = OnnxTarget()
    profile = target.profile("tiny")
    q = {**profile.quantization, "method": "minmax", "fallback_cosine": 0.99999999, "fallback_max": 1}
    path = tmp_path / "tiny.onnx"
    meta: dict = {}
    target.export(_Tiny().eval(), images[:1], path, profile.__class__(**{**profile.__dict__, "quantization": q}),
                  meta, images)
    assert len(meta["float_nodes"]) == 1  # the limit, as no int8 graph reaches that cosine
    assert _float_inputs(path, meta["float_nodes"][0])
    assert np.isfinite(meta["fallback_cosine_reached"])


@pytest.mark.parametrize("float_stem", [True, False])
def test_float_stem_keeps_only_the_conv_reading_the_image_float(float_stem: bool, tmp_path: Path) -> None:
    images = shapes(8)[0].numpy()
    target = OnnxTarget()
    profile = target.profile("tiny")
    q = {**profile.quantization, "float_stem": float_stem}
    path = tmp_path / "tiny.onnx"
    meta: dict = {}
    target.export(_Tiny().eval(), images[:1], path, profile.__class__(**{**profile.__dict__, "quantization": q}),
                  meta, images)
    convs = [n.name for n in onnx.load(str(path)).graph.node if n.op_type == "Conv"]
    assert [_float_inputs(path, name) for name in convs] == [float_stem, False]
    assert meta.get("float_stem", []) == convs[:1] * float_stem and "float_nodes" not in meta
