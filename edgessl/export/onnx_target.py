"""ONNX: `torch.onnx.export`, made portable, int8 by ONNX Runtime static quantization, run by onnxruntime.

The profile picks the exporter (`dynamo`, the maintained one, or the deprecated `torchscript`) and the opset; the
exported graph is then rewritten to the form every consumer runs correctly (`edgessl.export.onnx_graph`), and
exporter, opset, producer and rewrites are recorded in the metadata and model card. `edgessl.export.consumers`
checks the result in OpenCV DNN.

int8 is QDQ (QuantizeLinear/DequantizeLinear around each quantized op) after `quant_pre_process` (shape inference
and graph fusions), calibrated on the given images. U8S8 (uint8 activations, int8 weights) is the default: it is
the fast MLAS path on x86 and ARM, while S8S8 ran 5-10x slower on this x86 CPU. QAT: see `OnnxTarget.export_qat`.
"""

from __future__ import annotations

import json
import tempfile
from collections import Counter
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from edgessl.errors import EdgeSSLError
from edgessl.export.base import METADATA_KEY, Runner, Target, conversion_error, dumps, loads, loop_batch
from edgessl.export.profiles import Profile

if TYPE_CHECKING:
    from torch import nn

    from edgessl.export.qat import Finetune

INPUT, OUTPUT = "input", "embedding"
EXPORTERS = ("dynamo", "torchscript")
FALLBACK_IMAGES = 64  # calibration images the float fallback measures cosines on (one quantization per node)


def _session(path: Path, threads: int, profile_dir: Path | None = None) -> Any:
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.intra_op_num_threads = threads
    options.inter_op_num_threads = 1
    options.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    options.log_severity_level = 3
    if profile_dir is not None:
        options.enable_profiling = True
        options.profile_file_prefix = str(profile_dir / "ort")
    return ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])


class OnnxTarget(Target):
    name = "onnx"
    suffix = ".onnx"
    runtime = "onnxruntime"
    packages = {"onnx": "onnx==1.23.2", "onnxscript": "onnxscript==0.7.2", "onnxruntime": "onnxruntime==1.32.0"}
    options = {"opset": 18, "exporter": "dynamo"}
    quantization = {"format": "qdq", "activation": "uint8", "weight": "int8", "per_channel": True,
                    "method": "minmax", "float_stem": True, "keep_float": [], "keep_float_nodes": [],
                    "fallback_cosine": 0.0, "fallback_max": 16}
    choices = {"format": ("qdq", "qoperator"), "activation": ("uint8", "int8"), "weight": ("uint8", "int8"),
               "method": ("minmax", "percentile", "entropy")}

    def export(self, model: nn.Module, example: np.ndarray, path: Path, profile: Profile, meta: dict[str, Any],
               calib: np.ndarray | None = None, *, uint8_activations: bool = False) -> None:
        """`uint8_activations`: give an already quantized graph's int8 activations uint8 zero points (QAT)."""
        import onnx
        import torch

        from edgessl.export.onnx_graph import activations_to_uint8, make_portable

        exporter, opset = profile.options["exporter"], profile.options["opset"]
        if exporter not in EXPORTERS:
            raise EdgeSSLError(f"onnx profile: 'exporter' must be one of {', '.join(EXPORTERS)}; got {exporter!r}")
        dynamo = {"report": False} if exporter == "dynamo" else {}
        with tempfile.TemporaryDirectory(prefix="edgessl-onnx-") as tmp:
            graph = Path(tmp) / "fp32.onnx"
            try:
                torch.onnx.export(model, (torch.from_numpy(example),), str(graph), input_names=[INPUT],
                                  output_names=[OUTPUT], opset_version=opset, dynamo=exporter == "dynamo",
                                  verbose=False, **dynamo)
            except Exception as exc:  # exporter errors have many types; all mean "cannot convert"
                raise conversion_error(self.name, exc) from None
            proto = onnx.load(str(graph))
            rewrites = make_portable(proto)
            if uint8_activations:
                rewrites.append(f"int8 activations as uint8 ({activations_to_uint8(proto)} QDQ nodes)")
            producer = f"{proto.producer_name} {proto.producer_version}"
            opset = next((o.version for o in proto.opset_import if o.domain in ("", "ai.onnx")), opset)
            onnx.save(proto, str(graph))
            if calib is not None:
                graph = self._quantize(graph, Path(tmp), profile.quantization, calib, meta)
                proto = onnx.load(str(graph))
                rewrites += [f"after quantization: {r}" for r in make_portable(proto)]
            meta = {**meta, "exporter": f"torch.onnx ({exporter})", "opset": opset, "producer": producer,
                    "rewrites": rewrites}
            onnx.helper.set_model_props(proto, {METADATA_KEY: dumps(meta)})
            onnx.save(proto, str(path))

    def export_qat(self, model: nn.Module, example: np.ndarray, path: Path, profile: Profile, meta: dict[str, Any],
                   calib: np.ndarray, finetune: Finetune) -> None:
        """PT2E `prepare_qat_pt2e` with the int8 quantizer TFLite uses (`edgessl.export.pt2e.int8_quantizer`),
        fine-tuned, converted with int8 weight constants and exported by the same exporter as fp32 (a QDQ graph);
        with the profile's `activation: uint8` (the default) the int8 activations are then given uint8 zero points
        (`onnx_graph.activations_to_uint8`, exact), so ONNX Runtime runs the U8S8 QLinearConv path.

        Why this quantizer: it quantizes every conv's output and each hard-swish, add and mul, the QDQ placement ORT
        fuses into QLinear ops. torchao's X86 quantizer fuses conv with the following activation (no Q between
        them), which ORT cannot fuse: a 32 px mobilenetv3_small_100 ran 2.5 ms vs PTQ's 0.34 ms. NNCF's torch model
        exports with batch norm unfolded between the weight's DequantizeLinear and the next Q, which ORT cannot fuse
        either: on a 224 px mobilenetv4_conv_small it ran 4x slower than fp32 (60.7 vs 15.4 ms)."""
        from edgessl.export.pt2e import int8_quantizer, quantized_graph

        q = profile.quantization
        quantizer = int8_quantizer(per_channel=q["per_channel"], qat=True)
        graph = quantized_graph(model, quantizer, calib, "NCHW", finetune, fold_weights=True)
        self.export(graph, example, path, profile, meta, uint8_activations=q["activation"] == "uint8")

    def _quantize(self, graph: Path, tmp: Path, q: dict[str, Any], calib: np.ndarray, meta: dict[str, Any]) -> Path:
        """QDQ (or QOperator) static quantization of `graph` calibrated on `calib`; op types in `keep_float`,
        nodes in `keep_float_nodes` and, with `float_stem`, the conv reading the image stay float;
        `fallback_cosine` > 0 adds the measured float fallback (`edgessl.export.fallback`). The float nodes are
        recorded in `meta["float_nodes"]`."""
        import onnx
        from onnxruntime.quantization.shape_inference import quant_pre_process

        prepared, out = tmp / "prepared.onnx", tmp / "int8.onnx"
        quant_pre_process(str(graph), str(prepared))
        nodes, keep = onnx.load(str(prepared)).graph, set(q["keep_float"])
        image = {i.name for i in nodes.input}
        stem = [n.name for n in nodes.node if q["float_stem"] and n.op_type == "Conv" and n.input[0] in image]
        excluded = [n.name for n in nodes.node if n.op_type in keep or n.name in q["keep_float_nodes"]]
        missing = set(q["keep_float_nodes"]) - set(excluded)
        if missing:
            raise EdgeSSLError(f"export/onnx.yaml quantization.keep_float_nodes: no node named {sorted(missing)} in "
                               "the graph; use node names of the quant_pre_process graph (Netron shows them)")

        def quantize(src: Path, dst: Path, only: list[str] | None, exclude: list[str]) -> None:
            self._quantize_static(src, dst, q, calib, only, exclude)

        if q["fallback_cosine"] > 0:
            from edgessl.export.fallback import choose_float_nodes

            chosen, reached = choose_float_nodes(prepared, calib[:FALLBACK_IMAGES], quantize, tmp,
                                                 q["fallback_cosine"], q["fallback_max"], excluded + stem)
            excluded = [n for n in chosen if n not in stem]
            meta.update(float_nodes=excluded, fallback_cosine_reached=round(reached, 5))
        elif excluded:
            meta.update(float_nodes=excluded)
        if stem:
            meta.update(float_stem=stem)
        quantize(prepared, out, None, excluded + stem)
        return out

    @staticmethod
    def _quantize_static(src: Path, dst: Path, q: dict[str, Any], calib: np.ndarray, only: list[str] | None,
                         exclude: list[str]) -> None:
        from onnxruntime.quantization import (CalibrationDataReader, CalibrationMethod, QuantFormat, QuantType,
                                              quantize_static)

        class Images(CalibrationDataReader):
            def __init__(self) -> None:
                self.items = iter(calib[i:i + 1] for i in range(len(calib)))

            def get_next(self) -> dict[str, np.ndarray] | None:
                item = next(self.items, None)
                return None if item is None else {INPUT: item}

        types = {"uint8": QuantType.QUInt8, "int8": QuantType.QInt8}
        methods = {"minmax": CalibrationMethod.MinMax, "percentile": CalibrationMethod.Percentile,
                   "entropy": CalibrationMethod.Entropy}
        try:
            quantize_static(str(src), str(dst), Images(),
                            quant_format=QuantFormat.QDQ if q["format"] == "qdq" else QuantFormat.QOperator,
                            activation_type=types[q["activation"]], weight_type=types[q["weight"]],
                            per_channel=q["per_channel"], calibrate_method=methods[q["method"]],
                            nodes_to_quantize=only, nodes_to_exclude=exclude)
        except Exception as exc:
            raise conversion_error("onnxruntime quantization", exc) from None

    def load(self, path: Path, threads: int) -> Runner:
        session = _session(path, threads)
        return loop_batch(lambda x: session.run(None, {INPUT: x})[0])

    def metadata(self, path: Path) -> dict[str, Any]:
        return loads(_session(path, 1).get_modelmeta().custom_metadata_map.get(METADATA_KEY))

    def float_ops(self, path: Path) -> Counter[str]:
        """Nodes whose outputs are float in ORT's optimized graph (read from one profiled run)."""
        with tempfile.TemporaryDirectory(prefix="edgessl-ortprof-") as tmp:
            session = _session(path, 1, Path(tmp))
            shape = [d if isinstance(d, int) else 1 for d in session.get_inputs()[0].shape]
            session.run(None, {INPUT: np.zeros(shape, np.float32)})
            events = json.loads(Path(session.end_profiling()).read_text())
        ops: Counter[str] = Counter()
        for event in events:
            args = event.get("args", {})
            if event.get("cat") != "Node" or not event.get("name", "").endswith("_kernel_time"):
                continue
            outputs = [t for shape in args.get("output_type_shape", []) for t in shape]
            if "float" in outputs and args.get("op_name") != "DequantizeLinear":
                ops[args.get("op_name", "?")] += 1
        return ops
