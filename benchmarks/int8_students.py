"""One line per student and runtime from `edgessl export` tables: PTQ and QAT side by side, and the best int8.

Each student's table comes from one export of its trained checkpoint (fp32, PTQ int8 and 200-step QAT int8 on all
three runtimes, the recipe's CIFAR-10 with 10,000 training images as the kNN bank and 10,000 test images):

    edgessl export RUN/last.pt --target onnx,openvino,tflite --qat-steps 200 data.train_samples=10000 \\
        --out exported/NAME --name NAME --consumers none
    python benchmarks/int8_students.py exported/*/*_benchmark.json

The best int8 artifact is the one with the smallest kNN drop (ties: the faster); "within" compares its drop with
the table's tolerance (0.5 pt by default). Speed-ups are the export's own (fp32 and int8 timed side by side at the
checkpoint's image size); the deployment-size latency is `benchmarks/int8_latency_224.py`.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

RUNTIMES = ("onnx", "openvino", "tflite")


def _cell(row: dict[str, Any] | None) -> str:
    if row is None:
        return "-"
    return f"{row['knn_delta']:+.2f} ({row['cosine_mean']:.4f})"


def _speedup(row: dict[str, Any]) -> str:
    return f"{row['speedup']:.2f}x" if row.get("speedup") else "-"


def lines(table: dict[str, Any]) -> list[str]:
    """Table lines for one export table (one per runtime with int8 rows)."""
    ref, out = table["reference"], []
    for target in RUNTIMES:
        rows = [r for r in table["rows"] if r["target"] == target and r["precision"] == "int8"]
        if not rows:
            continue
        by_method = {r["method"]: r for r in rows}
        best = max(rows, key=lambda r: (round(r["knn_delta"], 2), -r["latency_ms"]))
        within = "yes" if best["knn_delta"] >= -table["tolerance"] else "**no**"
        out.append(f"| {table['arch']} | {ref['knn_top1']:.2f} | {rows[0]['runtime']} | "
                   f"{_cell(by_method.get('ptq') or by_method.get('ptq+fallback'))} | {_cell(by_method.get('qat'))} "
                   f"| {best['method']} {best['knn_delta']:+.2f} | {within} | {_speedup(best)} |")
    return out


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("tables", nargs="+", type=Path, help="<name>_benchmark.json files written by edgessl export")
    args = p.parse_args()
    print("| student | PyTorch fp32 kNN | runtime | PTQ Δ pt (cosine) | QAT Δ pt (cosine) | best int8 | within "
          "tolerance | its speed-up (32 px) |")
    print("|---|---|---|---|---|---|---|---|")
    for path in args.tables:
        for line in lines(json.loads(path.read_text())):
            print(line)


if __name__ == "__main__":
    main()
