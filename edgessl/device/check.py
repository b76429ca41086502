"""`edgessl-device check DIR`: run a bundle's artifact in its runtime on this device and compare it with the
PyTorch fp32 reference shipped in the bundle; torch-free (numpy and the runtime only).

Measured: cosine of the device's embeddings of the shipped images to the reference embeddings (mean, min);
weighted kNN top-1 of the device's embeddings against the shipped bank (PyTorch fp32 embeddings of training
images) and its change from the reference's own kNN top-1 against the same bank; batch-1 latency (median, p90)
at each thread count; peak memory; OS, CPU and runtime version. The table is `edgessl check`'s (same columns,
same code): one row for the shipped reference, one per thread count.
"""

from __future__ import annotations

import importlib.util
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from edgessl import __version__
from edgessl.device.knn import knn_top1
from edgessl.device.sysinfo import describe, peak_memory_mb
from edgessl.errors import EdgeSSLError
from edgessl.export import target_of
from edgessl.export.bundle_format import load_arrays, normalize, verify
from edgessl.export.check import cosine, latency_samples_ms, size_mb
from edgessl.export.table import Row, status, write_table

OUTPUT = "device_check"  # <out>/device_check.json and .md
# target -> (the module its runner imports, its pip package, the edgessl extra that installs it)
RUNTIMES = {"tflite": ("ai_edge_litert", "ai-edge-litert", "device-tflite"),
            "onnx": ("onnxruntime", "onnxruntime", "device-onnx"),
            "openvino": ("openvino", "openvino", "device-openvino")}


@dataclass
class DeviceResult:
    rows: list[Row]
    markdown: str
    table_json: Path
    device: dict[str, Any]

    @property
    def passed(self) -> bool:
        return all(r.status == "pass" for r in self.rows)


def _require_runtime(target: str) -> str:
    """The runtime's pip package; a one-line error naming the extra to install when it is missing."""
    if target not in RUNTIMES:
        raise EdgeSSLError(f"bundle target '{target}' is unknown to this edgessl; choose a bundle of "
                           f"{', '.join(RUNTIMES)}")
    module, package, extra = RUNTIMES[target]
    if importlib.util.find_spec(module) is None:
        raise EdgeSSLError(f"this bundle runs on {package}, which is not installed here: "
                           f"pip install 'edgessl[{extra}]'")
    return package


def parse_threads(text: str) -> list[int]:
    """'1,2,4' -> [1, 2, 4]; a one-line error for anything else."""
    try:
        threads = [int(t) for t in text.split(",") if t.strip()]
    except ValueError:
        threads = []
    if not threads or min(threads) < 1:
        raise EdgeSSLError(f"--threads must be comma-separated counts >= 1 like 1,2,4; got '{text}'")
    return threads


def check_bundle(folder: str | Path, threads: list[int], tolerance: float | None = None, runs: int | None = None,
                 out: str | Path | None = None) -> DeviceResult:
    """Verify the bundle, measure its artifact on this device, write `<out>/device_check.json` and `.md`."""
    folder = Path(folder)
    spec = verify(folder)
    package = _require_runtime(str(spec.get("target")))
    arrays = load_arrays(folder)
    artifact = folder / spec["artifact"]
    target = target_of(artifact)
    tol = float(spec["tolerance"] if tolerance is None else tolerance)
    warmup, count = int(spec["warmup"]), int(spec["runs"] if runs is None else runs)
    if count < 1:
        raise EdgeSSLError(f"--runs must be >= 1; got {count}")
    k, temperature = int(spec["knn"]["k"]), float(spec["knn"]["temperature"])
    images = normalize(arrays["images"], spec["mean"], spec["std"])
    ref_top1 = knn_top1(arrays["bank"], arrays["bank_labels"], arrays["reference"], arrays["labels"], k,
                        temperature)
    size = round(size_mb(folder / f for f in spec["artifact_files"]), 4)
    rows = [Row("pytorch", "pytorch fp32 (shipped)", "fp32", "pass", "reference.npy", spec["pytorch_size_mb"],
                1.0, 1.0, ref_top1, 0.0, None, None, None, "embeddings computed on the host by `edgessl bundle`")]
    feats = None
    for n in threads:
        runner = target.load(artifact, n)
        if feats is None:  # embeddings once, with the first thread count
            feats = np.concatenate([runner(images[i:i + 64]) for i in range(0, len(images), 64)])
            cos = cosine(feats, arrays["reference"])
            top1 = knn_top1(arrays["bank"], arrays["bank_labels"], feats, arrays["labels"], k, temperature)
        times = latency_samples_ms(runner, images[:1], warmup, count)
        rows.append(Row(target.name, f"{package} {describe(package)['runtime_version']}", spec["precision"],
                        status(top1 - ref_top1, tol), spec["artifact"], size, float(cos.mean()), float(cos.min()),
                        top1, top1 - ref_top1, float(np.median(times)), None, n,
                        f"p90 {np.percentile(times, 90):.3f} ms"))
        del runner
    device = {**describe(package), "peak_memory_mb": peak_memory_mb()}
    header = {"edgessl": __version__, "bundle": str(folder.resolve()), "checkpoint": spec.get("checkpoint"),
              "arch": spec["arch"], "image_size": spec["image_size"], "tolerance": tol, "data": spec.get("data"),
              "reference": {"runtime": "pytorch fp32 (shipped)", "knn_top1": ref_top1, "k": k,
                            "temperature": temperature, "num_train": len(arrays["bank"]),
                            "num_test": len(arrays["images"])},
              "device": device, "latency": {"warmup": warmup, "runs": count, "batch": 1}}
    out_dir = Path(out) if out is not None else folder
    out_dir.mkdir(parents=True, exist_ok=True)
    md = write_table(rows, header, out_dir / f"{OUTPUT}.md", out_dir / f"{OUTPUT}.json")
    return DeviceResult(rows, md, out_dir / f"{OUTPUT}.json", device)


def device_line(device: dict[str, Any]) -> str:
    """One line saying where the check ran."""
    memory = device.get("peak_memory_mb")
    return (f"device: {device['system']} {device['machine']}, {device['cpu']}, {device['cores']} cores; "
            f"{device['runtime']} {device['runtime_version']}, Python {device['python']}, numpy {device['numpy']}"
            + (f"; peak memory {memory:.0f} MB" if memory is not None else ""))
