"""PT2E quantization shared by the targets that use it (TFLite: litert-torch's quantizer; ONNX QAT: the X86 one).

`quantized_graph` exports the encoder with `torch.export` (batch dimension dynamic, so training batches and the
batch-1 artifact share one graph), inserts the quantizer's observers (`prepare_pt2e`) or fake quantization
(`prepare_qat_pt2e`), calibrates on the given images, lets `finetune` train the fake-quantized graph (QAT), and
converts it to quantize/dequantize ops in eval form, ready for a converter.

QAT folds batch norm into the convolutions first (what `prepare_pt2e` does for PTQ): batch norm keeps its running
statistics during fine-tuning anyway, and litert-torch 0.10's QAT conv+bn annotator fails with this torchao
(it hands `torch.export` a function). The fake-quantized weights are then the folded ones the runtime runs.
"""

from __future__ import annotations

import copy
from typing import TYPE_CHECKING, Any

import numpy as np

if TYPE_CHECKING:
    from torch import nn

    from edgessl.export.qat import Finetune

CALIB_BATCH = 32


def quantized_graph(model: nn.Module, quantizer: Any, calib: np.ndarray, layout: str,
                    finetune: Finetune | None = None) -> nn.Module:
    """`model` (NCHW or NHWC input per `layout`; not modified) quantized by `quantizer`; QAT when `finetune`.

    `calib` is normalized NCHW; batch norm is in eval form throughout (running statistics kept)."""
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
    return move_exported_model_to_eval(convert_pt2e(graph, fold_quantize=False))
