"""The measured float fallback for ONNX Runtime int8: which layers to leave in float, found by measuring.

Sensitivity: each quantizable node is quantized ALONE (ORT `nodes_to_quantize=[node]`, same settings and
calibration as the full model) and the mean cosine of its embeddings to the fp32 graph's on the calibration images
is recorded; the lower, the more that node's int8 costs. The fallback then leaves the worst nodes in float
(`nodes_to_exclude`), doubling their number (1, 2, 4, ...) until the fully quantized rest reaches the profile's
`fallback_cosine` on the calibration images, or `fallback_max` nodes are float. Each float node costs latency
(a dequantize/quantize round trip), which the export table's int8 speed-up shows.

Per runtime (what the libraries offer): ONNX Runtime excludes nodes by name (`nodes_to_exclude`, used here and
by the profile's `keep_float_nodes`); NNCF offers `IgnoredScope(names=...)` and an accuracy-control loop
(`quantize_with_accuracy_control`) that needs a validation function; LiteRT's PT2E quantizer can leave modules
unannotated (`set_module_name(name, None)`), but its converter then keeps those ops float between
DEQUANTIZE/QUANTIZE pairs.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import numpy as np

from edgessl.export.base import cosine

QUANTIZABLE = ("Conv", "MatMul", "Gemm", "Add", "Mul", "HardSigmoid", "HardSwish", "ReduceMean",
               "GlobalAveragePool", "Sigmoid", "Relu", "Clip")

Quantize = Callable[[Path, Path, "list[str] | None", "list[str]"], None]  # (src, dst, only these, exclude these)


def _outputs(path: Path, images: np.ndarray) -> np.ndarray:
    from edgessl.export.onnx_target import INPUT, _session

    session = _session(path, 1)
    return np.concatenate([session.run(None, {INPUT: images[i:i + 1]})[0].reshape(1, -1)
                           for i in range(len(images))])


def sensitivity(prepared: Path, images: np.ndarray, quantize: Quantize, tmp: Path) -> list[tuple[str, float]]:
    """(node name, mean cosine to fp32 with only that node quantized), most sensitive (lowest cosine) first."""
    import onnx

    reference = _outputs(prepared, images)
    ranked = []
    for node in onnx.load(str(prepared)).graph.node:
        if node.op_type not in QUANTIZABLE or not node.name:
            continue
        single = tmp / "single.onnx"
        quantize(prepared, single, [node.name], [])
        ranked.append((node.name, float(cosine(_outputs(single, images), reference).mean())))
    return sorted(ranked, key=lambda item: item[1])


def choose_float_nodes(prepared: Path, images: np.ndarray, quantize: Quantize, tmp: Path, target_cosine: float,
                       limit: int, keep: list[str]) -> tuple[list[str], float]:
    """The fewest worst-ranked nodes (beyond `keep`) to leave in float for `target_cosine`, and the cosine reached."""
    reference = _outputs(prepared, images)
    out = tmp / "fallback.onnx"
    quantize(prepared, out, None, keep)
    reached = float(cosine(_outputs(out, images), reference).mean())
    if reached >= target_cosine:
        return keep, reached
    ranked = [name for name, _ in sensitivity(prepared, images, quantize, tmp) if name not in keep]
    count = 1
    while True:
        chosen = keep + ranked[:count]
        quantize(prepared, out, None, chosen)
        reached = float(cosine(_outputs(out, images), reference).mean())
        if reached >= target_cosine or count >= min(limit, len(ranked)):
            return chosen, reached
        count *= 2
