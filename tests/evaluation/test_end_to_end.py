"""A tiny real run through `edgessl eval` and `edgessl report` (with the t-SNE plot)."""

import json

import pytest

from edgessl.cli import main
from edgessl.engine.trainer import pretrain
from tests.tiny_run import tiny


@pytest.mark.slow
def test_eval_and_report_on_a_tiny_run(tmp_path, capsys):
    pretrain(tiny(tmp_path, "train.epochs=1", "train.knn_every=0"))
    assert main(["eval", str(tmp_path), "--epochs", "3", "--k", "5", "--no-progress"]) == 0
    result = json.loads((tmp_path / "eval.json").read_text())
    assert result["data"] == {"format": "synthetic", "root": "", "train": 64, "test": 32}
    assert result["knn"]["k"] == 5 and 0 <= result["knn"]["top1"] <= 100
    assert result["linear"]["last"]["epoch"] == 3 and result["feature_dim"] == 1024
    assert "kNN (k=5" in capsys.readouterr().out

    assert main(["eval", str(tmp_path / "last.pt"), "knn.k=3", "--knn", "--no-progress"]) == 0
    result = json.loads((tmp_path / "eval.json").read_text())
    assert result["knn"]["k"] == 3  # --knn only; k from the override
    assert result["linear"]["epochs"] == 3  # the probe of the same weights is kept, with its settings

    assert main(["report", str(tmp_path), "--tsne-samples", "20", "--no-progress"]) == 0
    page = (tmp_path / "report.html").read_text()
    assert 'src="report/tsne.png"' in page and (tmp_path / "report" / "tsne.png").is_file()
    assert "kNN (k=3" in page
