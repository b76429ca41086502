"""PT2E quantization shared by the targets that use it (TFLite PTQ and QAT, ONNX QAT), and the quantizer they share.

`quantized_graph` exports the encoder with `torch.export` (batch dimension dynamic, so training batches and the
batch-1 artifact share one graph), inserts the quantizer's observers (`prepare_pt2e`) or fake quantization
(`prepare_qat_pt2e`), calibrates on the given images, lets `finetune` train the fake-quantized graph (QAT), and
converts it to quantize/dequantize ops in eval form, ready for a converter.

`int8_quantizer` is litert-torch's PT2E quantizer (int8 symmetric per-channel weights, int8 asymmetric
activations) extended to annotate every op with an int8 kernel; see its docstring.

QAT folds batch norm into the convolutions first (what `prepare_pt2e` does for PTQ): batch norm keeps its running
statistics during fine-tuning anyway, and litert-torch 0.10's QAT conv+bn annotator fails with this torchao
(it hands `torch.export` a function). The fake-quantized weights are then the folded ones the runtime runs.
"""

from __future__ import annotations

import copy
from typing import TYPE_CHECKING, Any, ClassVar

import numpy as np

if TYPE_CHECKING:
    from torch import nn

    from edgessl.export.qat import Finetune

CALIB_BATCH = 32
_INT8_ELEMENTWISE = ("hardswish", "hardsigmoid", "mean", "add", "mul")  # aten names, in-place "_" stripped
_PADS = ("pad", "constant_pad_nd")


def quantized_graph(model: nn.Module, quantizer: Any, calib: np.ndarray, layout: str,
                    finetune: Finetune | None = None, fold_weights: bool = False) -> nn.Module:
    """`model` (NCHW or NHWC input per `layout`; not modified) quantized by `quantizer`; QAT when `finetune`.

    `calib` is normalized NCHW; batch norm is in eval form throughout (running statistics kept). `fold_weights`
    stores weights as int8 constants (what ONNX Runtime needs to fuse QDQ into QLinearConv); litert-torch takes
    the unfolded form."""
    import torch
    from torchao.quantization.pt2e import move_exported_model_to_eval
    from torchao.quantization.pt2e.quantize_pt2e import convert_pt2e, prepare_pt2e, prepare_qat_pt2e
    from torchao.quantization.pt2e.utils import _fuse_conv_bn_

    images = torch.from_numpy(np.ascontiguousarray(calib.transpose(0, 2, 3, 1) if layout == "NHWC" else calib))
    model = copy.deepcopy(model).eval()  # the graph gets its own weights: training must not touch the teacher's
    example = (images[:2] if len(images) > 1 else images.repeat(2, 1, 1, 1),)
    dynamic = torch.export.ShapesCollection()  # by tensor: works for forward(x) and wrappers' forward(*args)
    dynamic[example[0]] = {0: torch.export.Dim("batch")}
    exported = torch.export.export(model, example, dynamic_shapes=dynamic).module()
    if finetune is not None:
        _fuse_conv_bn_(exported)  # as prepare_pt2e does; see the module docstring
    graph = (prepare_qat_pt2e if finetune else prepare_pt2e)(exported, quantizer)
    move_exported_model_to_eval(graph)
    with torch.no_grad():
        for chunk in images.split(CALIB_BATCH):
            graph(chunk)
    if finetune is not None:
        finetune(graph, layout)
    return move_exported_model_to_eval(convert_pt2e(graph, fold_quantize=fold_weights))


def int8_quantizer(per_channel: bool, qat: bool) -> Any:
    """litert-torch's PT2E quantizer (its symmetric config; the QAT config when `qat`), extended so every op LiteRT
    has an int8 kernel for is annotated: litert-torch 0.10 annotates add/mul through source partitions, which
    `torch.export` (non-strict) no longer records, and never annotates hard-swish, hard-sigmoid or the
    squeeze-excite means. Unannotated, those ran in float between
    DEQUANTIZE/QUANTIZE pairs (a chain of two residual adds always did). TF-"same" padding (timm's tf_ models)
    shares its input's quantization, so LiteRT pads in int8 without a requantize and two layout transposes. A conv
    followed by ReLU6 (hardtanh) is quantized after the clip, as conv + ReLU is: litert-torch gave the clip its
    input's quantization, which left a float Clip between QDQ pairs in ONNX Runtime (efficientnet_lite0 QAT 0.68 ms
    vs PTQ's 0.45 ms) and spent int8 levels on conv outputs above 6.
    The QAT variant is for a batch-norm-folded graph (`quantized_graph`): no conv+bn patterns left to annotate,
    and litert-torch 0.10's conv+bn QAT annotator fails with this torchao (it hands `torch.export` a function)."""
    from litert_torch.quantize import pt2e_quantizer
    from torch.fx import Node
    from torchao.quantization.pt2e.quantizer import QuantizationAnnotation, SharedQuantizationSpec

    def op_name(node: Node) -> str:
        return getattr(node.target, "__name__", "").split(".")[0].rstrip("_") if node.op == "call_function" else ""

    class Quantizer(pt2e_quantizer.PT2EQuantizer):
        def annotate(self, model: Any) -> Any:
            config = self.global_config
            for node in model.graph.nodes if config is not None else ():
                if op_name(node) in _INT8_ELEMENTWISE and "quantization_annotation" not in node.meta:
                    inputs = [a for a in node.args if isinstance(a, Node)]
                    node.meta["quantization_annotation"] = QuantizationAnnotation(
                        input_qspec_map=dict.fromkeys(inputs, config.input_activation),
                        output_qspec=config.output_activation, _annotated=True)
            model = super().annotate(model)
            for node in model.graph.nodes:
                conv = node.args[0] if op_name(node) == "hardtanh" else None
                conv_annotation = conv.meta.get("quantization_annotation") if isinstance(conv, Node) else None
                if conv_annotation is not None and op_name(conv) == "conv2d" and len(conv.users) == 1:
                    conv_annotation.output_qspec = None  # conv + ReLU6 is one int8 op: quantize after the clip
                    node.meta["quantization_annotation"] = QuantizationAnnotation(
                        output_qspec=config.output_activation, _annotated=True)
                source = node.args[0] if op_name(node) in _PADS else None
                annotation = source.meta.get("quantization_annotation") if isinstance(source, Node) else None
                if annotation is not None and annotation.output_qspec is not None:
                    shared = SharedQuantizationSpec(source)
                    node.meta["quantization_annotation"] = QuantizationAnnotation(
                        input_qspec_map={source: shared}, output_qspec=shared, _annotated=True)
            return model

    class QatQuantizer(Quantizer):
        STATIC_QAT_ONLY_OPS: ClassVar[list[str]] = []

    config = pt2e_quantizer.get_symmetric_quantization_config(is_per_channel=per_channel, is_qat=qat)
    return (QatQuantizer if qat else Quantizer)().set_global(config)
