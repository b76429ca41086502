"""The portability rewrites: exact in ONNX Runtime, and what makes OpenCV DNN run the graph right."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

onnx = pytest.importorskip("onnx", reason="needs onnx (pip install 'edgessl[export]')")
from onnx import TensorProto, helper  # noqa: E402

from edgessl.export.check import cosine  # noqa: E402
from edgessl.export.onnx_graph import (activations_to_uint8, drop_default_attributes, make_portable,  # noqa: E402
                                       pooled_head)


def se_gate(path: Path) -> None:
    """`x * HardSigmoid(g)` with alpha and beta spelled out: the dynamo exporter's squeeze-excite gate."""
    nodes = [helper.make_node("HardSigmoid", ["g"], ["h"], alpha=1 / 6, beta=0.5),
             helper.make_node("Mul", ["x", "h"], ["y"])]
    graph = helper.make_graph(nodes, "se", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 4, 3, 3]),
                                            helper.make_tensor_value_info("g", TensorProto.FLOAT, [1, 4, 1, 1])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 4, 3, 3])])
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 18)]), str(path))


def run_opencv(path: Path, feeds: dict[str, np.ndarray]) -> np.ndarray:
    cv2 = pytest.importorskip("cv2", reason="needs opencv-python-headless (pip install 'edgessl[consumers]')")
    net = cv2.dnn.readNetFromONNX(str(path))
    for name, value in feeds.items():
        net.setInput(value, name)
    return net.forward()


def test_dropping_default_attributes_fixes_the_opencv_se_gate(tmp_path: Path) -> None:
    """OpenCV 5.1.0 turns the explicit-beta gate into HardSwish(g) (x lost); without the default beta it is right."""
    rng = np.random.default_rng(0)
    feeds = {"x": rng.standard_normal((1, 4, 3, 3)).astype(np.float32),
             "g": rng.standard_normal((1, 4, 1, 1)).astype(np.float32) * 3}
    expected = feeds["x"] * np.clip(feeds["g"] / 6 + 0.5, 0, 1)
    path = tmp_path / "se.onnx"
    se_gate(path)
    before = run_opencv(path, feeds)
    assert before.shape != expected.shape, "OpenCV now runs the explicit-beta gate right: the rewrite may go"
    model = onnx.load(str(path))
    assert drop_default_attributes(model) == 1  # beta=0.5; alpha=1/6 is not HardSigmoid's default (0.2)
    assert [a.name for a in model.graph.node[0].attribute] == ["alpha"]
    onnx.save(model, str(path))
    np.testing.assert_allclose(run_opencv(path, feeds), expected, atol=1e-6)


@pytest.fixture(scope="module")
def dynamo_graph(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, np.ndarray]:
    """A tiny MobileNetV3 exported by the dynamo exporter, untouched, and an input."""
    import torch

    from edgessl.models import build_backbone

    torch.manual_seed(0)
    model = build_backbone("mobilenetv3_small_100", stem_stride=1).eval()
    x = torch.randn(1, 3, 16, 16)
    path = tmp_path_factory.mktemp("graph") / "raw.onnx"
    torch.onnx.export(model, (x,), str(path), input_names=["input"], output_names=["embedding"], opset_version=18,
                      dynamo=True, report=False, verbose=False)
    return path, x.numpy()


@pytest.mark.slow
def test_portable_graph_is_exact_and_ends_in_global_pool_flatten(dynamo_graph, tmp_path: Path) -> None:
    import onnxruntime as ort

    raw, x = dynamo_graph
    model = onnx.load(str(raw))
    assert [n.op_type for n in model.graph.node][-1] == "Reshape"
    done = make_portable(model)
    assert done and "GlobalAveragePool" in done[0]
    ops = [n.op_type for n in model.graph.node]
    assert ops[-1] == "Flatten" and "GlobalAveragePool" in ops
    assert not [n for n in model.graph.node if n.op_type == "HardSigmoid" and
                any(a.name == "beta" for a in n.attribute)], "explicit-beta HardSigmoid: OpenCV 5.1.0 mis-fuses it"
    onnx.checker.check_model(model, full_check=True)
    portable = tmp_path / "portable.onnx"
    onnx.save(model, str(portable))
    outputs = [ort.InferenceSession(str(p), providers=["CPUExecutionProvider"]).run(None, {"input": x})[0]
               for p in (raw, portable)]
    np.testing.assert_allclose(outputs[0], outputs[1], rtol=1e-5, atol=1e-6)
    assert cosine(run_opencv(portable, {"input": x}).reshape(1, -1), outputs[0]).min() > 0.9999
    assert pooled_head(model) == 0  # idempotent: nothing left to rewrite


def test_int8_activations_become_uint8_with_identical_outputs() -> None:
    """Q -> DQ of an activation with int8 zero point -3, and an int8 weight's DQ: the activation pair moves to
    uint8 (zero point 125) with bit-identical outputs in ONNX Runtime; the weight's zero point stays int8."""
    ort = pytest.importorskip("onnxruntime", reason="needs onnxruntime (pip install 'edgessl[export]')")
    from onnx import numpy_helper

    consts = [numpy_helper.from_array(np.array(0.05, np.float32), "s"), numpy_helper.from_array(np.int8(-3), "z"),
              numpy_helper.from_array(np.array([[-7, 90]], np.int8), "w"),
              numpy_helper.from_array(np.int8(0), "wz")]
    nodes = [helper.make_node("QuantizeLinear", ["x", "s", "z"], ["q"]),
             helper.make_node("DequantizeLinear", ["q", "s", "z"], ["a"]),
             helper.make_node("DequantizeLinear", ["w", "s", "wz"], ["b"]), helper.make_node("Add", ["a", "b"], ["y"])]
    graph = helper.make_graph(nodes, "qdq", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [4, 2])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, [4, 2])], consts)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 18)])
    x = np.linspace(-9, 9, 8, dtype=np.float32).reshape(4, 2)  # past both ends of the int8 range

    def run(m: object) -> np.ndarray:
        return ort.InferenceSession(m.SerializeToString(), providers=["CPUExecutionProvider"]).run(None, {"x": x})[0]

    before = run(model)
    assert activations_to_uint8(model) == 2
    zero_points = {i.name: numpy_helper.to_array(i) for i in model.graph.initializer}
    assert zero_points[model.graph.node[0].input[2]].dtype == np.uint8 == zero_points[model.graph.node[1].input[2]].dtype
    assert int(zero_points[model.graph.node[0].input[2]]) == 125 and model.graph.node[2].input[2] == "wz"
    np.testing.assert_array_equal(run(model), before)
