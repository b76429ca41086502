"""TFLite (LiteRT): litert-torch converts the encoder wrapped to take NHWC input; int8 by PT2E full-integer PTQ.

int8: `torch.export` -> `prepare_pt2e` with litert-torch's `PT2EQuantizer` (int8 symmetric weights, per-channel by
default; int8 activations, histogram observers) -> calibration -> `convert_pt2e` -> LiteRT STATIC conversion.
QAT: the same quantizer's QAT config through `prepare_qat_pt2e`, fine-tuned before `convert_pt2e`.
The converter folds the first quantize op into the input, so an int8 artifact's INPUT is int8; its output is int8
when the last op is quantized (ReLU networks) and float otherwise (hard-swish heads). The input/output scale and
zero point are in the file and in the sidecar metadata; the runner applies them. litert-torch 0.10 offers no
switch for float I/O on quantized models (only its experimental v2 converter has converter flags, and it rejects
quantization), so int8 I/O is what every int8 artifact has.
Metadata: TFLite flatbuffers have no free-form key/value store in this toolchain, so it is a sidecar
`<file>.json` (the model card carries the same facts).
"""

from __future__ import annotations

import json
import contextlib
import logging
import os
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from edgessl.errors import EdgeSSLError
from edgessl.export.base import Runner, Target, conversion_error, loads, loop_batch, quantize_input
from edgessl.export.profiles import Profile

if TYPE_CHECKING:
    from torch import nn

    from edgessl.export.qat import Finetune


_PROGRESS = "LITERT_TORCH_SHOW_PROGRESS"


def _not_training_mode_warning(record: logging.LogRecord) -> bool:
    """Drop litert-torch's "converted in training mode" warning: PT2E graphs are in eval form but keep the flag
    (their `.eval()` is disabled by torch.export)."""
    return "converted in training mode" not in record.getMessage()


@contextlib.contextmanager
def _quiet() -> Iterator[None]:
    """Silence litert-torch's per-stage progress lines (its switch is an environment variable) and that warning."""
    previous = os.environ.get(_PROGRESS)
    os.environ[_PROGRESS] = "n"
    logging.getLogger().addFilter(_not_training_mode_warning)
    try:
        yield
    finally:
        logging.getLogger().removeFilter(_not_training_mode_warning)
        if previous is None:
            os.environ.pop(_PROGRESS, None)
        else:
            os.environ[_PROGRESS] = previous


def _sidecar(path: Path) -> Path:
    return path.with_name(path.name + ".json")


def _interpreter(path: Path, threads: int, delegates: bool = True) -> Any:
    from ai_edge_litert.interpreter import Interpreter, OpResolverType

    resolver = OpResolverType.AUTO if delegates else OpResolverType.BUILTIN_WITHOUT_DEFAULT_DELEGATES
    interpreter = Interpreter(model_path=str(path), num_threads=threads, experimental_op_resolver_type=resolver)
    interpreter.allocate_tensors()
    return interpreter


def _io_quantization(detail: dict[str, Any]) -> dict[str, Any]:
    scale, zero_point = detail["quantization"]
    return {"dtype": np.dtype(detail["dtype"]).name, "scale": float(scale), "zero_point": int(zero_point)}


class TfliteTarget(Target):
    name = "tflite"
    suffix = ".tflite"
    runtime = "ai-edge-litert"
    layout = "NHWC"
    packages = {"litert_torch": "litert-torch==0.10.0", "ai_edge_litert": "ai-edge-litert==2.3.0"}
    quantization = {"per_channel": True}

    def files(self, path: Path) -> list[Path]:
        return [path, _sidecar(path)]

    def export(self, model: nn.Module, example: np.ndarray, path: Path, profile: Profile, meta: dict[str, Any],
               calib: np.ndarray | None = None, finetune: Finetune | None = None) -> None:
        import litert_torch
        import torch

        nhwc = litert_torch.to_channel_last_io(model, args=[0]).eval()
        sample = (torch.from_numpy(np.ascontiguousarray(example.transpose(0, 2, 3, 1))),)
        try:
            with _quiet():
                if calib is None:
                    edge = litert_torch.convert(nhwc, sample)
                else:
                    edge = self._quantized(nhwc, sample, profile.quantization, calib, finetune)
                edge.export(str(path))
        except (KeyboardInterrupt, EdgeSSLError):
            raise
        except Exception as exc:  # converter errors have many types; all mean "cannot convert"
            raise conversion_error(self.name, exc) from None
        interpreter = _interpreter(path, 1)
        io = {"input_quantization": _io_quantization(interpreter.get_input_details()[0]),
              "output_quantization": _io_quantization(interpreter.get_output_details()[0])}
        if io["input_quantization"]["dtype"] != "float32":
            io["input"] = (f"{io['input_quantization']['dtype']}: the normalized image ({meta.get('input', '')}) "
                           "quantized as round(x / scale) + zero_point with input_quantization")
        _sidecar(path).write_text(json.dumps({**meta, **io}, indent=2, sort_keys=True) + "\n")

    def export_qat(self, model: nn.Module, example: np.ndarray, path: Path, profile: Profile, meta: dict[str, Any],
                   calib: np.ndarray, finetune: Finetune) -> None:
        """PT2E `prepare_qat_pt2e` with the same LiteRT quantizer (its QAT config), fine-tuned, converted."""
        self.export(model, example, path, profile, meta, calib, finetune)

    @staticmethod
    def _quantized(nhwc: nn.Module, sample: tuple[Any], q: dict[str, Any], calib: np.ndarray,
                   finetune: Finetune | None) -> Any:
        """PT2E: annotate, calibrate (and fine-tune, for QAT), convert (`edgessl.export.pt2e`)."""
        import litert_torch
        from litert_torch.quantize.quant_config import QuantConfig

        from edgessl.export.pt2e import int8_quantizer, quantized_graph

        quantizer = int8_quantizer(per_channel=q["per_channel"], qat=finetune is not None)
        graph = quantized_graph(nhwc, quantizer, calib, "NHWC", finetune)
        return litert_torch.convert(graph, sample, quant_config=QuantConfig(pt2e_quantizer=quantizer))

    def load(self, path: Path, threads: int) -> Runner:
        interpreter = _interpreter(path, threads)
        inp, out = interpreter.get_input_details()[0], interpreter.get_output_details()[0]
        in_q, out_q = _io_quantization(inp), _io_quantization(out)

        def run_one(x: np.ndarray) -> np.ndarray:
            x = x.transpose(0, 2, 3, 1)
            if in_q["dtype"] != "float32":
                x = quantize_input(x, np.dtype(in_q["dtype"]), in_q["scale"], in_q["zero_point"])
            interpreter.set_tensor(inp["index"], np.ascontiguousarray(x))
            interpreter.invoke()
            y = interpreter.get_tensor(out["index"])
            if out_q["dtype"] != "float32":
                y = (y.astype(np.float32) - out_q["zero_point"]) * out_q["scale"]
            return y

        return loop_batch(run_one)

    def metadata(self, path: Path) -> dict[str, Any]:
        sidecar = _sidecar(path)
        return loads(sidecar.read_text()) if sidecar.is_file() else {}

    def float_ops(self, path: Path) -> Counter[str]:
        """Builtin ops (before delegation) that produce float tensors, other than DEQUANTIZE."""
        interpreter = _interpreter(path, 1, delegates=False)
        dtypes = {t["index"]: np.dtype(t["dtype"]) for t in interpreter.get_tensor_details()}
        ops: Counter[str] = Counter()
        for op in interpreter._get_ops_details():  # the public API has no per-op view
            if op["op_name"] != "DEQUANTIZE" and any(dtypes.get(i) == np.float32 for i in op["outputs"]):
                ops[op["op_name"]] += 1
        return ops
