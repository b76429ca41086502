"""OpenVINO `keep_float`: the named op types get no FakeQuantize on their inputs (NNCF IgnoredScope), the rest does."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import pytest
import torch

from edgessl.export import TARGETS
from edgessl.models.encoder_loading import load_encoder

from .conftest import ARCH, shapes

pytest.importorskip("nncf")


def _quantized_inputs(path: Path, op_type: str) -> tuple[int, int]:
    """(ops of `op_type`, how many of them read a FakeQuantize output) in the saved OpenVINO model."""
    import openvino as ov

    ops = [op for op in ov.Core().read_model(str(path)).get_ordered_ops() if op.get_type_name() == op_type]
    fed = [op for op in ops if any(i.get_source_output().get_node().get_type_name() == "FakeQuantize"
                                   for i in op.inputs())]
    return len(ops), len(fed)


@pytest.mark.slow
def test_keep_float_leaves_the_squeeze_excite_multiply_unquantized(checkpoint: Path, tmp_path: Path) -> None:
    target = TARGETS["openvino"]
    encoder = load_encoder(checkpoint)[0].eval()
    images = shapes(32)[0].numpy()
    counts = {}
    for keep in ([], ["Multiply"]):
        profile = target.profile(ARCH)
        profile = replace(profile, quantization={**profile.quantization, "keep_float": keep})
        path = tmp_path / f"int8_{len(keep)}.xml"
        with torch.no_grad():
            target.export(encoder, images[:1], path, profile, {}, images)
        counts[bool(keep)] = _quantized_inputs(path, "Multiply")
    (total, fed_default), (_, fed_kept) = counts[False], counts[True]
    assert total > 0 and fed_default > 0  # mobilenetv3's squeeze-excite scales are quantized by default
    assert fed_kept == 0
