"""Export a trained encoder to ONNX / OpenVINO / TFLite (fp32 and int8), check every artifact in its own runtime.

examples:
  edgessl export --int8 --target tflite                   # newest runs/*/last.pt; calibration from its recipe data
  edgessl export runs/mnv3s/last.pt --target onnx,openvino,tflite --int8 --fp32
  edgessl export runs/mnv3s --calib 512 --tolerance 0.5   # exit 1 if kNN top-1 drops more than 0.5 pt
  edgessl export runs/mnv3s data.root=../shared/datasets/cifar10_full_jpegbytes.npz data.format=jpegbytes
  edgessl export runs/mnv4s --target tflite --int8 --bundle  # + exported/<name>_int8_tflite_bundle/ for a board
  edgessl export runs/mnv3s --int8 --qat-steps 300           # adds <name>_int8_qat.* beside the PTQ int8 artifacts
  edgessl export runs/mnv3s --target onnx --dry-run          # the artifacts it would write and their settings

Artifacts take normalized float32 input ((pixels/255 - mean) / std; NCHW, TFLite NHWC; int8 TFLite takes it
quantized with the scale/zero point in its metadata), batch 1, and record
mean/std in their metadata and model card (<file>.md). int8 is post-training quantization calibrated on the
recipe's training images with the eval transform. Each artifact then runs in its runtime on the recipe's data:
cosine to PyTorch fp32 embeddings, kNN top-1 and its drop, batch-1 latency, size -> <out>/<name>_benchmark.md/.json.
ONNX artifacts are also run in OpenCV DNN when it is installed (--consumers): a row that disagrees with ONNX
Runtime on the same file fails.
Defaults per target (opset, quantization settings, threads, calibration size, tolerance) live in export/<target>.yaml.
--qat-steps N also fine-tunes, per target, the encoder with fake quantization where that runtime quantizes (PT2E +
LiteRT's quantizer for TFLite and, with uint8 activations, for ONNX Runtime; NNCF for OpenVINO), without
labels: the frozen fp32 encoder is the teacher (relational distillation over a queue + cosine); the table's method
column says ptq or qat.
"""

from __future__ import annotations

import argparse

HELP = "export an encoder to ONNX/OpenVINO/TFLite (fp32, int8) and check each artifact on its runtime"


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("overrides", nargs="*", metavar="[CHECKPOINT] [key=value ...]",
                   help="a checkpoint .pt or run folder (default: the newest runs/*/last.pt), then recipe overrides "
                        "such as data.root=PATH")
    p.add_argument("--target", default="onnx,openvino,tflite",
                   help="comma-separated targets (default: onnx,openvino,tflite)")
    p.add_argument("--int8", action="store_true", help="export int8 (default: both fp32 and int8)")
    p.add_argument("--fp32", action="store_true", help="export fp32 (default: both fp32 and int8)")
    p.add_argument("--calib", type=int, default=None, help="int8 calibration images (default: the profile's, 300)")
    p.add_argument("--tolerance", type=float, default=None,
                   help="max kNN top-1 drop in points before the exit code is 1 (default: the profile's, 0.5)")
    p.add_argument("--out", default="exported",
                   help="output folder (default: exported); one export at a time may write into it")
    p.add_argument("--name", default=None,
                   help="artifacts' base name: <out>/<name>_int8.onnx, ... (default: the recipe's name); an export "
                        "of another checkpoint under the same name in --out is refused, not overwritten")
    p.add_argument("--qat-steps", type=int, default=0, metavar="N",
                   help="also export int8 by quantization-aware training for N steps per target (default 0: PTQ only)")
    p.add_argument("--qat-lr", type=float, default=5e-6, help="QAT learning rate (AdamW, cosine decay; default 5e-6)")
    p.add_argument("--profiles", default=None, help="folder of <target>.yaml profiles (default: the repo's export/)")
    p.add_argument("--consumers", default="auto",
                   help="other runtimes to also run each artifact in, as extra table rows: opencv (ONNX in OpenCV "
                        "DNN), none, or auto (default: the installed ones; pip install 'edgessl[consumers]')")
    p.add_argument("--bundle", action="store_true",
                   help="also write <out>/<artifact>_<target>_bundle/ per artifact for `edgessl-device check` on a "
                        "board (what `edgessl bundle` writes, default sizes)")
    p.add_argument("--dry-run", action="store_true",
                   help="check the inputs and print the artifacts it would write (paths, target, precision, profile "
                        "settings) without converting anything or creating --out")


def newest_checkpoint(root: str = "runs") -> str:
    """The most recently written `runs/*/last.pt`."""
    from pathlib import Path

    from edgessl.errors import EdgeSSLError

    found = sorted(Path(root).glob("*/last.pt"), key=lambda p: p.stat().st_mtime)
    if not found:
        raise EdgeSSLError(f"no checkpoint given and no {root}/*/last.pt found; pass one (edgessl export runs/NAME)")
    return str(found[-1])


def run(args: argparse.Namespace) -> int:
    from edgessl.export.pipeline import export_checkpoint
    from edgessl.export.plan import describe, plan_export
    from edgessl.export.qat import QatSettings
    from edgessl.folder_lock import hold

    overrides = [i for i in args.overrides if "=" in i]
    paths = [i for i in args.overrides if "=" not in i]
    if len(paths) > 1:
        from edgessl.errors import EdgeSSLError

        raise EdgeSSLError(f"one checkpoint at a time; got {', '.join(paths)}")
    checkpoint = paths[0] if paths else newest_checkpoint()
    precisions = [p for p, on in (("fp32", args.fp32), ("int8", args.int8)) if on] or ["fp32", "int8"]
    targets = [t.strip() for t in args.target.split(",") if t.strip()]
    qat = QatSettings(args.qat_steps, args.qat_lr) if args.qat_steps else None
    settings = dict(calib=args.calib, tolerance=args.tolerance, overrides=overrides, profiles=args.profiles,
                    name=args.name, consumers=args.consumers, qat=qat)
    if args.dry_run:  # no lock either: nothing is written
        print(describe(plan_export(checkpoint, targets, precisions, args.out, **settings), args.bundle))
        return 0
    with hold(args.out, "--out"):  # one export at a time per folder
        result = export_checkpoint(checkpoint, targets, precisions, args.out, **settings)
    print(result.markdown)
    print(f"wrote {result.table_md} and {result.table_json}")
    missed = list(dict.fromkeys(r.target for r in result.rows if r.method.startswith("ptq") and r.status == "fail"))
    if missed and qat is None:
        print(f"int8 PTQ missed the tolerance on {', '.join(missed)}: add --qat-steps 400 for a QAT artifact "
              "(label-free fine-tuning; docs/export.md)")
    if args.bundle:
        from pathlib import Path

        from edgessl.commands.bundle import BANK, SAMPLES
        from edgessl.export.bundle import write_bundle

        artifacts = {}  # one bundle per artifact: the first row is the PyTorch reference, consumer rows repeat files
        for row in result.rows[1:]:
            artifacts.setdefault(row.file, row)
        for row in artifacts.values():
            artifact = Path(args.out) / row.file
            bundle = write_bundle(artifact, artifact.with_name(f"{artifact.stem}_{row.target}_bundle"), SAMPLES,
                                  BANK, checkpoint, overrides=overrides, profiles=args.profiles)
            print(f"wrote {bundle.folder}: {bundle.size_mb:.2f} MB")
    return 0 if result.passed else 1
