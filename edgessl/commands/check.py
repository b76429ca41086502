"""Re-run the on-device check of one exported artifact (.onnx, .xml, .tflite) in its own runtime.

examples:
  edgessl check exported/mnv3s_int8.tflite
  edgessl check exported/mnv3s_int8.onnx --data ../shared/datasets/cifar10_32px_train1k_test200.npz
  edgessl check exported/mnv3s_fp32.xml data.root=/data/cifar10 data.format=cifar10 --tolerance 1
  edgessl check exported/mnv3s_fp32.onnx --consumers opencv   # also run it in OpenCV DNN

The artifact's metadata names the checkpoint it came from (override with --checkpoint); its recipe gives the
data, kNN k and temperature, with `key=value` overrides. Prints the table, writes <artifact>.check.md/.json and
exits 1 when the kNN top-1 drop exceeds the tolerance or a consumer disagrees with the artifact's runtime.
"""

from __future__ import annotations

import argparse

HELP = "check an exported artifact in its runtime: cosine and kNN vs PyTorch fp32, latency, size"


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("artifact", help="an exported .onnx, .xml (OpenVINO) or .tflite file")
    p.add_argument("overrides", nargs="*", metavar="key=value", help="recipe overrides, e.g. data.root=PATH")
    p.add_argument("--data", default=None,
                   help="evaluation data: a .npz file or an image folder (sets data.root, and data.format to match)")
    p.add_argument("--checkpoint", default=None, help="the PyTorch checkpoint to compare with (default: from metadata)")
    p.add_argument("--tolerance", type=float, default=None,
                   help="max kNN top-1 drop in points (default: the target profile's)")
    p.add_argument("--profiles", default=None, help="folder of <target>.yaml profiles (default: the repo's export/)")
    p.add_argument("--consumers", default="none",
                   help="other runtimes to also run the artifact in, one row each: opencv (ONNX in OpenCV DNN), "
                        "auto (every installed one) or none (default)")


def run(args: argparse.Namespace) -> int:
    from edgessl.export.check_artifact import check_artifact

    result = check_artifact(args.artifact, args.checkpoint, args.overrides, args.tolerance, args.profiles,
                            data=args.data, consumers=args.consumers)
    print(result.markdown)
    print(f"wrote {result.table_md} and {result.table_json}")
    return 0 if result.passed else 1
