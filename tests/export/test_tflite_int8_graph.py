"""What LiteRT runs of an int8 artifact: every op in int8, no layout shuffles (graph structure; weights random)."""

from collections import Counter

import numpy as np
import pytest
import torch

from edgessl.export import get_target
from edgessl.export.tflite_target import _interpreter
from edgessl.models import build_backbone

pytest.importorskip("litert_torch")


# mobilenetv3_small_100: hard-swish, the squeeze-excite means and muls and the residual adds run in int8; LiteRT
# has no HARD_SIGMOID kernel, and its converter lowers each of the 9 hard-sigmoids to a float ADD and MUL.
# The minimal model has stages with two chained residual adds (litert-torch 0.10 left both in float) and, built
# with timm's TF padding, a pad + requantize + two transposes per strided block.
FLOAT_OPS = {"mobilenetv3_small_100": {"ADD": 9, "MUL": 9}, "tf_mobilenetv3_small_minimal_100": {}}


@pytest.mark.parametrize("arch", sorted(FLOAT_OPS))
def test_int8_graph_runs_int8_where_litert_can_and_shuffles_no_layout(tmp_path, arch):
    torch.manual_seed(0)
    model = build_backbone(arch, stem_stride=2).eval()
    images = np.random.default_rng(0).normal(size=(8, 3, 64, 64)).astype(np.float32)
    target = get_target("tflite")
    path = tmp_path / "int8.tflite"
    target.export(model, images[:1], path, target.profile(arch), {}, images)
    ops = Counter(op["op_name"] for op in _interpreter(path, 1, delegates=False)._get_ops_details())
    assert target.float_ops(path) == Counter(FLOAT_OPS[arch])
    assert ops["ADD"] - FLOAT_OPS[arch].get("ADD", 0) == 6 and not ops["TRANSPOSE"], ops
