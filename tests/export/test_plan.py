"""`edgessl export --dry-run`: the export's inputs checked and the artifacts it would write listed, with their
settings, without converting anything or creating --out."""

from __future__ import annotations

from edgessl.cli import main


def test_dry_run_lists_the_artifacts_and_writes_nothing(tiny_checkpoint, tmp_path, capsys):
    out = tmp_path / "exported"
    argv = ["export", str(tiny_checkpoint), "--target", "onnx,tflite", "--out", str(out), "--name", "m",
            "--calib", "16", "--qat-steps", "3", "--bundle", "--dry-run"]
    assert main(argv) == 0
    text = capsys.readouterr().out
    assert not out.exists()
    for line in (f"{out}/ would be created", "onnx (onnxruntime", "tolerance 0.5 pt", "opset",
                 f"{out / 'm_fp32.onnx'} + m_fp32.onnx.md (model card): fp32",
                 f"{out / 'm_int8.onnx'} + m_int8.onnx.md (model card): int8 ptq, calibration 16 images, quantization",
                 f"{out / 'm_int8_qat.onnx'}", "QAT 3 steps, lr 5e-06",
                 f"{out / 'm_int8.tflite'} + {out / 'm_int8.tflite.json'}",
                 f"{out / 'm_int8_tflite_bundle'}/", f"table: {out / 'm_benchmark'}.md"):
        assert line in text, text


def test_dry_run_refuses_what_the_export_refuses(tiny_checkpoint, capsys):
    assert main(["export", str(tiny_checkpoint), "--target", "coreml", "--dry-run"]) == 2
    assert "unknown export target 'coreml'" in capsys.readouterr().err
    assert main(["export", str(tiny_checkpoint), "--name", "../x", "--dry-run"]) == 2
