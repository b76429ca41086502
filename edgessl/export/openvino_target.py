"""OpenVINO IR: `openvino.convert_model` straight from PyTorch, int8 by NNCF post-training quantization (of the
OpenVINO model) or NNCF quantization-aware training (of the PyTorch model; `OpenVinoTarget.export_qat`).

Two traps measured here and handled: the CPU plugin runs "fp32" models in bf16 on CPUs that have it unless
`INFERENCE_PRECISION_HINT` is f32 (set for every artifact, so float parts of int8 models are f32 too), and
`save_model` writes fp16 weights unless `compress_to_fp16=False`.
"""

from __future__ import annotations

from collections import Counter
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from edgessl.export.base import METADATA_KEY, Runner, Target, conversion_error, dumps, loads, loop_batch
from edgessl.export.profiles import Profile

if TYPE_CHECKING:
    from torch import nn

    from edgessl.export.qat import Finetune

_NOT_COMPUTE = {"Parameter", "Result", "Const", "Constant", "Input", "Output", "Reorder", "Reshape"}  # no math


def _compile(path: Path, threads: int) -> Any:
    import openvino as ov

    config = {"INFERENCE_NUM_THREADS": threads, "INFERENCE_PRECISION_HINT": "f32", "PERFORMANCE_HINT": "LATENCY",
              "NUM_STREAMS": 1}
    return ov.Core().compile_model(str(path), "CPU", config)


def _reference_quantize_functions() -> None:
    """Make NNCF's PyTorch fake quantizers use its torch-native reference kernels. By default NNCF compiles a C++
    extension on first use (a compiler and minutes of CPU; on this 2-core VM it hit NNCF's 60 s timeout), and
    falls back to these same reference functions only when compiling fails."""
    from nncf.torch.quantization.extensions import QuantizedFunctionsCPU
    from nncf.torch.quantization.reference import ReferenceQuantizedFunctions

    if QuantizedFunctionsCPU._loaded_namespace is None:  # no public switch in nncf 3.4
        QuantizedFunctionsCPU._loaded_namespace = ReferenceQuantizedFunctions


class OpenVinoTarget(Target):
    name = "openvino"
    suffix = ".xml"
    runtime = "openvino"
    packages = {"openvino": "openvino==2026.4.1", "nncf": "nncf==3.4.0"}
    quantization = {"preset": "mixed", "range": "minmax", "fast_bias_correction": True, "keep_float": []}
    choices = {"preset": ("mixed", "performance"), "range": ("minmax", "mean_minmax", "median_minmax", "histogram")}

    def files(self, path: Path) -> list[Path]:
        return [path, path.with_suffix(".bin")]

    def export(self, model: nn.Module, example: np.ndarray, path: Path, profile: Profile, meta: dict[str, Any],
               calib: np.ndarray | None = None) -> None:
        import openvino as ov
        import torch

        try:
            ov_model = ov.convert_model(model, example_input=torch.from_numpy(example), input=[list(example.shape)])
        except Exception as exc:  # the frontend raises OpConversionFailure and others: all mean "cannot convert"
            raise conversion_error(self.name, exc) from None
        if calib is not None:
            ov_model = self._quantize(ov_model, profile.quantization, [calib[i:i + 1] for i in range(len(calib))])
        ov_model.set_rt_info(dumps(meta), [METADATA_KEY])
        ov.save_model(ov_model, str(path), compress_to_fp16=False)

    def export_qat(self, model: nn.Module, example: np.ndarray, path: Path, profile: Profile, meta: dict[str, Any],
                   calib: np.ndarray, finetune: Finetune) -> None:
        """NNCF's QAT flow: `nncf.quantize` on the PyTorch model (same settings as PTQ), fine-tune, `nncf.strip`,
        then `convert_model` turns its fake quantizers into OpenVINO FakeQuantize ops. `keep_float` names OpenVINO op
        types, which the PyTorch graph does not have: QAT quantizes every op NNCF would (recorded in `meta`)."""
        import copy

        import nncf
        import openvino as ov
        import torch

        _reference_quantize_functions()
        x = torch.from_numpy(example)
        q = {**profile.quantization, "keep_float": []}
        if profile.quantization["keep_float"]:
            meta["keep_float_ignored"] = "OpenVINO op types; QAT quantizes the PyTorch graph"
        student = self._quantize(copy.deepcopy(model).eval(), q,
                                 [torch.from_numpy(calib[i:i + 1]) for i in range(len(calib))])
        finetune(student, "NCHW")
        student = nncf.strip(student.eval(), do_copy=False, example_input=x)
        try:
            ov_model = ov.convert_model(student, example_input=x, input=[list(example.shape)])
        except Exception as exc:
            raise conversion_error(self.name, exc) from None
        ov_model.set_rt_info(dumps(meta), [METADATA_KEY])
        ov.save_model(ov_model, str(path), compress_to_fp16=False)

    @staticmethod
    def _quantize(model: Any, q: dict[str, Any], calib: list[Any]) -> Any:
        """NNCF PTQ of an OpenVINO or PyTorch `model` on the batch-1 images `calib`, with the profile's preset,
        activation range estimator, bias correction and ignored op types.

        NNCF's own default range is the MEAN of per-image min/max, which clips images whose activations run
        larger than average; measured here on MobileNetV3 it left some embeddings nearly orthogonal to PyTorch's
        (min cosine 0.04), while global min/max (ORT's default too) kept them."""
        import nncf
        from nncf.quantization.advanced_parameters import AdvancedQuantizationParameters
        from nncf.quantization.range_estimator import RangeEstimatorParametersSet

        dataset = nncf.Dataset(calib)
        presets = {"mixed": nncf.QuantizationPreset.MIXED, "performance": nncf.QuantizationPreset.PERFORMANCE}
        ignored = nncf.IgnoredScope(types=list(q["keep_float"]), validate=False) if q["keep_float"] else None
        try:
            return nncf.quantize(model, dataset, preset=presets[q["preset"]], subset_size=len(calib),
                                 fast_bias_correction=q["fast_bias_correction"], ignored_scope=ignored,
                                 advanced_parameters=AdvancedQuantizationParameters(
                                     activations_range_estimator_params=getattr(RangeEstimatorParametersSet,
                                                                                q["range"].upper())))
        except Exception as exc:
            raise conversion_error("nncf quantization", exc) from None

    def load(self, path: Path, threads: int) -> Runner:
        request = _compile(path, threads).create_infer_request()
        return loop_batch(lambda x: request.infer({0: x})[0])

    def metadata(self, path: Path) -> dict[str, Any]:
        import openvino as ov

        model = ov.Core().read_model(str(path))
        return loads(str(model.get_rt_info([METADATA_KEY]).value)) if model.has_rt_info([METADATA_KEY]) else {}

    def float_ops(self, path: Path) -> Counter[str]:
        """Layers the CPU plugin executes in f32 (its runtime graph's `runtimePrecision`)."""
        ops: Counter[str] = Counter()
        for op in _compile(path, 1).get_runtime_model().get_ordered_ops():
            info = op.get_rt_info()
            kind, precision = info["layerType"].value, info["runtimePrecision"].value.lower()
            if kind not in _NOT_COMPUTE and precision in ("f32", "fp32"):
                ops[kind] += 1
        return ops
