"""`edgessl report` on a short fake run folder: HTML that references existing PNGs; one-line errors."""

import json
import re

from edgessl.cli import main
from edgessl.config import Config


def _fake_run(path):
    path.mkdir()
    Config(name="fake").save(path / "config.yaml")
    rows = ["epoch,step,loss,lr,img_per_s,knn_top1,loss_kind,pt_entropy,extra_metric"]  # no knn_top5/wall_s
    for step in range(1, 13):
        kind = "infonce" if step <= 4 else "relation"
        rows.append(f"{(step - 1) // 4},{step},{8.3 - step * 0.05:.3f},{0.06 * step / 12:.4f},512.5,,{kind},8.1,"
                    f"{step}")
        if step % 4 == 0:
            rows.append(f"{step // 4},{step},,,,{20 + step},,,")
    (path / "metrics.csv").write_text("\n".join(rows) + "\n")
    return path


def _referenced_pngs(page: str) -> list[str]:
    return re.findall(r'<img src="([^"]+\.png)"', page)


def test_report_references_existing_pngs(tmp_path, capsys):
    run = _fake_run(tmp_path / "run")
    (run / "eval.json").write_text(json.dumps({
        "arch": "mobilenetv3_small_100", "epoch": 3, "branch": "student", "data": {"train": 100, "test": 50},
        "knn": {"top1": 31.5, "top5": 80.0, "k": 200, "temperature": 0.1},
        "linear": {"best": {"epoch": 90, "top1": 40.0, "top5": 85.0},
                   "last": {"epoch": 100, "top1": 39.5, "top5": 84.0}}}))
    (run / "export_report.json").write_text(json.dumps([
        {"target": "onnx", "precision": "fp32", "size_mb": 6.1, "latency_ms": 3.2, "cosine_mean": 1.0,
         "knn_delta": 0.0},
        {"target": "onnx", "runtime": "onnxruntime 1.32.0", "precision": "int8", "method": "ptq", "size_mb": 1.7,
         "latency_ms": 1.4, "cosine_mean": 0.995},
        {"target": "onnx", "runtime": "opencv-dnn 5.1.0", "precision": "int8", "method": "ptq", "size_mb": 1.7,
         "latency_ms": 2.9, "cosine_mean": 0.995}]))
    assert main(["report", str(run)]) == 0
    page = (run / "report.html").read_text()
    pngs = _referenced_pngs(page)
    names = {p.rsplit("/", 1)[-1] for p in pngs}
    assert {"loss.png", "lr.png", "knn.png", "img_per_s.png", "pt_entropy.png", "extra_metric.png",
            "export.png"} <= names
    assert all((run / p).is_file() for p in pngs)
    assert "linear probe, best (epoch 90)" in page and "<td>39.5</td>" in page  # eval results
    assert "int8" in page and "1.4" in page  # export table
    assert "<td>opencv-dnn 5.1.0</td>" in page and "<td>ptq</td>" in page  # a consumer row is told apart by runtime
    assert "method: ressl" in page and "batch_size: 256" in page  # the recipe
    assert "ressl (trained loss: infonce, then relation)" in page  # the summary names the method and its losses
    assert "tsne" not in page  # no checkpoint: no embedding plot
    assert "report.html" in capsys.readouterr().out


def test_report_without_optional_parts(tmp_path):
    run = _fake_run(tmp_path / "run")
    (run / "metrics.csv").write_text("epoch,step,loss\n")  # a run that has not logged yet
    assert main(["report", str(run), "--no-tsne"]) == 0
    page = (run / "report.html").read_text()
    assert _referenced_pngs(page) == [] and "edgessl eval" in page


def test_report_on_a_folder_that_is_not_a_run(tmp_path, capsys):
    assert main(["report", str(tmp_path)]) == 2
    err = capsys.readouterr().err.strip()
    assert "is not a run folder" in err and "config.yaml" in err and len(err.splitlines()) == 1
    assert main(["report", str(tmp_path / "missing")]) == 2


def test_report_on_a_broken_export_table(tmp_path, capsys):
    run = _fake_run(tmp_path / "run")
    (run / "export_report.json").write_text("{not json")
    assert main(["report", str(run), "--no-tsne"]) == 2
    assert "export_report.json" in capsys.readouterr().err
