"""int8 vs fp32 latency at the deployment size (224 px, batch 1) for each student, on all three runtimes, at 1 and
4 threads (issue: int8 that wins on every shipped student).

Each student is built as deployed at 224 px (stem stride 2), exported by the real targets (fp32, and int8 by the
profile's post-training quantization), and each target's fp32 and int8 artifacts are timed side by side
(`paired_latency_ms`: interleaved rounds, fastest kept). Weights: the timm architecture with edgessl's
initialisation; latency does not depend on the weights' values, and calibrating on 16 random normalized images
gives the int8 graph its ranges. Under a 1.05x speed-up the ops the runtime still runs in float are listed.

    python benchmarks/int8_latency_224.py                                   # every shipped student
    python benchmarks/int8_latency_224.py --arch tf_mobilenetv3_small_minimal_100 --threads 1,4 --runs 50

Prints a Markdown table (paste it into README's export section).
"""

from __future__ import annotations

import argparse
import tempfile
from pathlib import Path

import numpy as np
import torch

from edgessl.export import get_target
from edgessl.export.check import paired_latency_ms
from edgessl.models import build_backbone

STUDENTS = ("mobilenetv3_small_100", "tf_mobilenetv3_small_minimal_100", "mobilenetv4_conv_small",
            "efficientnet_lite0", "efficientnet_b0", "mobilenetv3_small_075", "tf_mobilenetv3_large_minimal_100",
            "mobilenetv3_large_100", "mobilenetv2_100")  # the issue's five, then the other recipes' students


def _float_ops(target, path: Path) -> str:
    ops = target.float_ops(path)
    return ", ".join(f"{op}x{n}" for op, n in ops.most_common(4)) if ops else "none"


def bench(arch: str, targets: list[str], threads: list[int], size: int, runs: int) -> list[str]:
    """Table lines for one student: one per target, fp32 and int8 latency and the speed-up per thread count."""
    torch.manual_seed(0)
    model = build_backbone(arch, stem_stride=2).eval()
    images = np.random.default_rng(0).normal(size=(16, 3, size, size)).astype(np.float32)
    lines = []
    with tempfile.TemporaryDirectory(prefix="edgessl-bench224-") as tmp:
        for name in targets:
            target = get_target(name)
            profile = target.profile(arch)
            paths = {p: Path(tmp) / f"{arch}_{p}{target.suffix}" for p in ("fp32", "int8")}
            target.export(model, images[:1], paths["fp32"], profile, {})
            target.export(model, images[:1], paths["int8"], profile, {}, images)
            cells = []
            for n in threads:
                fp32, int8 = paired_latency_ms([target.load(paths[p], n) for p in ("fp32", "int8")], images[:1],
                                               warmup=5, runs=runs)
                cells += [f"{fp32:.2f}", f"{int8:.2f}", f"**{fp32 / int8:.2f}x**"]
            floats = _float_ops(target, paths["int8"])
            lines.append(f"| {arch} | {target.runtime} | " + " | ".join(cells) + f" | {floats} |")
            print(lines[-1], flush=True)
    return lines


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--arch", default=",".join(STUDENTS), help="comma-separated students")
    p.add_argument("--target", default="onnx,openvino,tflite")
    p.add_argument("--threads", default="1,4", help="comma-separated thread counts")
    p.add_argument("--size", type=int, default=224)
    p.add_argument("--runs", type=int, default=30, help="timed runs per round (median; 3 interleaved rounds)")
    args = p.parse_args()
    torch.set_num_threads(1)
    threads = [int(t) for t in args.threads.split(",")]
    head = " | ".join(f"fp32 ms ({n}t) | int8 ms ({n}t) | speed-up ({n}t)" for n in threads)
    print(f"| student | runtime | {head} | int8 ops left in float |")
    print("|---|---|" + "---|" * (3 * len(threads)) + "---|")
    for arch in args.arch.split(","):
        bench(arch, args.target.split(","), threads, args.size, args.runs)


if __name__ == "__main__":
    main()
