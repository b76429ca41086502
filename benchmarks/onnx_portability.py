"""Which ONNX exporter and opset give the right embeddings in every consumer: the measurement behind export/onnx.yaml.

For each architecture (random init with randomized BN statistics: the graph's semantics, not its accuracy, are
under test), each exporter (dynamo, TorchScript) and opset, the fp32 graph as exported ("raw") and after
`edgessl.export.onnx_graph.make_portable` ("portable") is checked with `onnx.checker.check_model(full_check=True)`
and run in ONNX Runtime and OpenCV DNN on the same images; the table gives the minimum cosine to PyTorch.

    python benchmarks/onnx_portability.py                                   # the README's table (32 px)
    python benchmarks/onnx_portability.py --size 224 --stem-stride 2 --archs mobilenetv3_small_100
"""

from __future__ import annotations

import argparse
import logging
import tempfile
import warnings
from pathlib import Path

import numpy as np
import torch

from edgessl.export.check import cosine, torch_runner
from edgessl.export.consumers import CONSUMERS
from edgessl.export.onnx_graph import make_portable
from edgessl.export.onnx_target import INPUT, OUTPUT, OnnxTarget
from edgessl.models import build_backbone


def model_with_stats(arch: str, stem_stride: int) -> torch.nn.Module:
    """A seeded encoder whose BN statistics are not the identity (so folded BN changes the weights)."""
    torch.manual_seed(0)
    model = build_backbone(arch, stem_stride=stem_stride).eval()
    for m in model.modules():
        if isinstance(m, torch.nn.modules.batchnorm._BatchNorm):
            m.running_mean.uniform_(-0.1, 0.1)
            m.running_var.uniform_(0.5, 1.5)
    return model


def check(path: Path, images: np.ndarray, ref: np.ndarray) -> tuple[str, float, float]:
    """checker verdict, ONNX Runtime and OpenCV minimum cosine to `ref`."""
    import onnx

    try:
        onnx.checker.check_model(onnx.load(str(path)), full_check=True)
        verdict = "ok"
    except onnx.checker.ValidationError:
        verdict = "fail"
    ort = OnnxTarget().load(path, 1)(images)
    opencv = CONSUMERS["opencv"].load(path, 1)(images)
    return verdict, float(cosine(ort, ref).min()), float(cosine(opencv, ref).min())


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--archs", default="mobilenetv3_small_100,mobilenetv4_conv_small,efficientnet_lite0")
    p.add_argument("--size", type=int, default=32)
    p.add_argument("--stem-stride", type=int, default=1)
    p.add_argument("--opsets", default="13,17,18")
    p.add_argument("--images", type=int, default=8)
    args = p.parse_args()
    torch.set_num_threads(1)
    warnings.filterwarnings("ignore")
    logging.disable(logging.WARNING)
    import cv2

    print(f"torch {torch.__version__}, opencv {cv2.__version__}; {args.size} px, stem stride {args.stem_stride}; "
          f"min cosine to PyTorch over {args.images} random images\n")
    print("| arch | exporter | opset | graph | checker | ONNX Runtime | OpenCV DNN |\n|---|---|---|---|---|---|---|")
    images = np.random.default_rng(0).standard_normal((args.images, 3, args.size, args.size)).astype(np.float32)
    for arch in args.archs.split(","):
        model = model_with_stats(arch, args.stem_stride)
        ref = torch_runner(model)(images)
        for exporter in ("torchscript", "dynamo"):
            for opset in (int(o) for o in args.opsets.split(",")):
                with tempfile.TemporaryDirectory() as tmp:
                    path = Path(tmp) / "m.onnx"
                    torch.onnx.export(model, (torch.from_numpy(images[:1]),), str(path), input_names=[INPUT],
                                      output_names=[OUTPUT], opset_version=opset, dynamo=exporter == "dynamo",
                                      verbose=False, **({"report": False} if exporter == "dynamo" else {}))
                    for graph in ("raw", "portable"):
                        if graph == "portable":
                            import onnx

                            proto = onnx.load(str(path))
                            make_portable(proto)
                            onnx.save(proto, str(path))
                        verdict, ort, opencv = check(path, images, ref)
                        print(f"| {arch} | {exporter} | {opset} | {graph} | {verdict} | {ort:.5f} | {opencv:.5f} |",
                              flush=True)


if __name__ == "__main__":
    main()
