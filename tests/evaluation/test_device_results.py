"""`edgessl report RUN --device device_check.json ...`: boards' rows beside the host's export rows."""

import json

from edgessl.cli import main

from .test_report import _fake_run


def _device_check(path, machine: str) -> str:
    rows = [{"target": "pytorch", "precision": "fp32", "threads": None, "latency_ms": None, "knn_delta": 0.0},
            *({"target": "tflite", "precision": "int8", "threads": t, "size_mb": 2.9, "latency_ms": 1.5 / t,
               "cosine_mean": 0.99, "knn_delta": -0.3} for t in (1, 4))]
    path.write_text(json.dumps({"rows": rows, "device": {"machine": machine, "cpu": "Cortex-A76"}}))
    return str(path)


def test_report_shows_each_boards_rows(tmp_path):
    run = _fake_run(tmp_path / "run")
    (run / "export_report.json").write_text(json.dumps([{"target": "onnx", "precision": "int8", "latency_ms": 0.9}]))
    pi, jetson = _device_check(tmp_path / "pi.json", "aarch64"), _device_check(tmp_path / "j.json", "arm64")
    assert main(["report", str(run), "--no-tsne", "--device", pi, jetson]) == 0
    page = (run / "report.html").read_text()
    assert "tflite @ aarch64 Cortex-A76, 4 threads" in page and "tflite @ arm64 Cortex-A76, 1 threads" in page
    assert "<td>onnx</td>" in page and "pytorch" not in page.split("<h2>Exports</h2>")[1].split("</table>")[0]


def test_bad_device_file_is_one_line(tmp_path, capsys):
    run = _fake_run(tmp_path / "run")
    (tmp_path / "x.json").write_text(json.dumps({"rows": []}))
    assert main(["report", str(run), "--no-tsne", "--device", str(tmp_path / "x.json")]) == 2
    assert "is not a device_check.json written by edgessl-device" in capsys.readouterr().err
    assert main(["report", str(run), "--no-tsne", "--device", str(tmp_path / "missing.json")]) == 2
    assert "missing.json' not found" in capsys.readouterr().err
