"""Make an exported ONNX graph portable: the same embeddings in every consumer, not only in ONNX Runtime.

Both rewrites are exact (the ONNX semantics do not change; ONNX Runtime gives identical outputs):

- Attributes equal to their schema default are dropped. OpenCV DNN 5.1.0 fuses `Mul(x, HardSigmoid(g))` whose
  HardSigmoid spells out both alpha=1/6 and beta=0.5 (what the dynamo exporter writes for MobileNetV3's
  squeeze-excite gate) into `HardSwish(g)` and drops `x`: cosine 0.57 to PyTorch, without a warning. With the
  default beta left implicit (the TorchScript exporter's form) OpenCV computes the gate correctly.
- The pooled head: the last `ReduceMean` over H and W of an NCHW tensor (keepdims) becomes `GlobalAveragePool`,
  and a final `Reshape` of an (N, C, 1, 1) tensor to (N, C) becomes `Flatten`: the form the TorchScript exporter
  writes and every consumer maps onto its own pooling kernel.

`activations_to_uint8` is the one rewrite for quantized graphs (also exact): int8 activation quantization with
zero point z holds the same values as uint8 with z + 128, and uint8 activations are ONNX Runtime's fast path.

Constant folding is the exporters' own (`optimize=True` for dynamo, `do_constant_folding` for TorchScript).
"""

from __future__ import annotations

from typing import Any

import numpy as np

SPATIAL = {2, 3}


def _defaults(op: str, opset: int) -> dict[str, Any]:
    """Attribute name -> default value of `op` in the default domain at `opset` (only attributes with one)."""
    import onnx

    try:
        schema = onnx.defs.get_schema(op, opset, "")
    except onnx.defs.SchemaError:
        return {}
    return {name: onnx.helper.get_attribute_value(a.default_value) for name, a in schema.attributes.items()
            if a.default_value.type != onnx.AttributeProto.UNDEFINED}


def drop_default_attributes(model: Any) -> int:
    """Remove every attribute whose value equals its schema default; returns how many were removed."""
    import onnx

    opset = next((o.version for o in model.opset_import if o.domain in ("", "ai.onnx")), None)
    if opset is None:
        return 0
    removed = 0
    for node in model.graph.node:
        if node.domain not in ("", "ai.onnx"):
            continue
        defaults = _defaults(node.op_type, opset)
        keep = [a for a in node.attribute
                if a.name not in defaults or onnx.helper.get_attribute_value(a) != defaults[a.name]]
        removed += len(node.attribute) - len(keep)
        if len(keep) != len(node.attribute):
            del node.attribute[:]
            node.attribute.extend(keep)
    return removed


def _constants(model: Any) -> dict[str, np.ndarray]:
    from onnx import numpy_helper

    return {i.name: numpy_helper.to_array(i) for i in model.graph.initializer}


def _shapes(model: Any) -> dict[str, tuple[int | None, ...]]:
    """Tensor name -> shape (None for a symbolic dim), from ONNX shape inference."""
    import onnx

    inferred = onnx.shape_inference.infer_shapes(model)
    infos = [*inferred.graph.input, *inferred.graph.value_info, *inferred.graph.output]
    return {v.name: tuple(d.dim_value if d.HasField("dim_value") else None for d in v.type.tensor_type.shape.dim)
            for v in infos if v.type.tensor_type.HasField("shape")}


def _is_flatten(shape: tuple[int | None, ...] | None, target: np.ndarray | None) -> bool:
    """Whether reshaping a static 4D `shape` to the 2-element `target` is Flatten(axis=1)."""
    if shape is None or target is None or len(shape) != 4 or None in shape or target.size != 2:
        return False
    flat = (shape[0], int(np.prod(shape[1:])))
    wanted = [int(v) for v in target.ravel()]
    if wanted.count(-1) == 1:
        wanted[wanted.index(-1)] = flat[0] * flat[1] // max(1, wanted[1 - wanted.index(-1)])
    return tuple(wanted) == flat


def _reduce_axes(node: Any, consts: dict[str, np.ndarray]) -> set[int] | None:
    """The axes a ReduceMean reduces (attribute before opset 18, constant input from 18), None when unknown."""
    for a in node.attribute:
        if a.name == "axes":
            return set(a.ints)
    if len(node.input) > 1 and node.input[1] in consts:
        return {int(v) for v in consts[node.input[1]].ravel()}
    return None


def pooled_head(model: Any) -> int:
    """Rewrite the head's spatial mean as GlobalAveragePool (+ Flatten); returns how many nodes were rewritten."""
    from onnx import helper

    consts, shapes = _constants(model), _shapes(model)
    outputs = {o.name for o in model.graph.output}
    rewritten = 0
    pools = [n for n in model.graph.node if n.op_type in ("ReduceMean", "GlobalAveragePool")]
    head = pools[-1] if pools and pools[-1].op_type == "ReduceMean" else None  # the last spatial mean
    if head is not None and len(shapes.get(head.input[0], ())) == 4:
        axes = _reduce_axes(head, consts)
        keepdims = next((a.i for a in head.attribute if a.name == "keepdims"), 1)
        if axes is not None and {a % 4 for a in axes} == SPATIAL and keepdims == 1:
            head.CopyFrom(helper.make_node("GlobalAveragePool", [head.input[0]], list(head.output), name=head.name))
            rewritten += 1
    for node in model.graph.node:
        if node.op_type == "Reshape" and node.output[0] in outputs and _is_flatten(shapes.get(node.input[0]),
                                                                                  consts.get(node.input[1])):
            node.CopyFrom(helper.make_node("Flatten", [node.input[0]], list(node.output), name=node.name, axis=1))
            rewritten += 1
    _drop_unused_initializers(model)
    return rewritten


def _drop_unused_initializers(model: Any) -> None:
    used = {i for n in model.graph.node for i in n.input} | {o.name for o in model.graph.output}
    keep = [i for i in model.graph.initializer if i.name in used]
    del model.graph.initializer[:]
    model.graph.initializer.extend(keep)


def make_portable(model: Any) -> list[str]:
    """Apply both rewrites in place; returns what changed (recorded in the artifact's metadata)."""
    done = []
    if (n := pooled_head(model)):
        done.append(f"pooled head as GlobalAveragePool + Flatten ({n} nodes)")
    if (n := drop_default_attributes(model)):
        done.append(f"{n} default-valued attributes dropped")
    return done


def activations_to_uint8(model: Any) -> int:
    """Give every activation QuantizeLinear/DequantizeLinear with an int8 zero point z the uint8 zero point z + 128
    (the represented values are identical); weights (constant inputs) stay int8. Returns how many nodes changed."""
    from onnx import numpy_helper

    consts = _constants(model)
    shifted: dict[str, str] = {}  # int8 zero point's name -> its uint8 twin's
    changed = 0
    for node in model.graph.node:
        if node.op_type not in ("QuantizeLinear", "DequantizeLinear") or node.input[0] in consts:
            continue
        zero = consts.get(node.input[2]) if len(node.input) > 2 else None
        if zero is not None and zero.dtype == np.int8:
            if node.input[2] not in shifted:
                twin = numpy_helper.from_array((zero.astype(np.int16) + 128).astype(np.uint8), f"{node.input[2]}_u8")
                model.graph.initializer.append(twin)
                shifted[node.input[2]] = twin.name
            node.input[2] = shifted[node.input[2]]
            changed += 1
    if changed:
        del model.graph.value_info[:]  # inferred int8 types of the rewritten tensors are stale
        _drop_unused_initializers(model)
    return changed
