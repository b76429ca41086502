"""`edgessl eval` bad input: one-line errors (exit code 2) before any heavy work; eval.json keeps every metric."""

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from edgessl.cli import main


def _error(capsys, argv: list[str]) -> str:
    assert main(argv) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and err.startswith("edgessl eval: error:")
    return err


def test_run_folder_without_checkpoint(tmp_path, capsys):
    (tmp_path / "config.yaml").write_text("name: x\n")
    assert "has no last.pt" in _error(capsys, ["eval", str(tmp_path)])


def test_path_that_is_neither_folder_nor_checkpoint(tmp_path, capsys):
    (tmp_path / "notes.txt").write_text("hello")
    assert "neither a run folder nor a checkpoint" in _error(capsys, ["eval", str(tmp_path / "notes.txt")])
    assert "not found" in _error(capsys, ["eval", str(tmp_path / "nope.pt")])


def test_pt_file_that_is_not_a_checkpoint(tmp_path, capsys):
    (tmp_path / "last.pt").write_bytes(b"not a zip")
    assert "not a readable PyTorch checkpoint" in _error(capsys, ["eval", str(tmp_path)])


@pytest.mark.parametrize("flag", [["--k", "0"], ["--temperature", "-1"], ["--epochs", "x"]])
def test_bad_numbers_are_argument_errors(tmp_path, flag):
    with pytest.raises(SystemExit) as exc:
        main(["eval", str(tmp_path), *flag])
    assert exc.value.code == 2



def _wide_png_folder(root: Path) -> Path:
    """train/ and val/ of two classes of 16-bit greyscale PNGs (dark and bright gradients)."""
    for split, n in (("train", 6), ("val", 3)):
        for label, level in (("dark", 2000), ("bright", 50000)):
            (root / split / label).mkdir(parents=True)
            for i in range(n):
                grey = (np.linspace(0, level, 16 * 16).reshape(16, 16) + 300 * i).astype(np.uint16)
                Image.fromarray(grey).save(root / split / label / f"{i}.png")
    return root


@pytest.mark.slow
def test_knn_then_linear_keeps_both_in_eval_json(tiny_checkpoint, tmp_path, capsys, recwarn):
    run = tmp_path / "run"
    shutil.copytree(tiny_checkpoint.parent, run)
    data = ["data.format=imagefolder", f"data.root={_wide_png_folder(tmp_path / 'wide')}"]  # 16-bit PNGs
    assert main(["eval", str(run), *data, "--knn", "--k", "3", "--temperature", "0.2", "--no-progress"]) == 0
    capsys.readouterr()
    assert main(["eval", str(run), *data, "--linear", "--epochs", "2", "--no-progress"]) == 0
    assert not any(line.startswith("kNN") for line in capsys.readouterr().out.splitlines())  # prints what it ran
    result = json.loads((run / "eval.json").read_text())
    assert (result["knn"]["k"], result["knn"]["temperature"], result["linear"]["epochs"]) == (3, 0.2, 2)
    assert result["data"]["train"] == 12 and not recwarn.list  # every 16-bit PNG read, none skipped

    result["epoch"] = 99  # results of other weights are replaced, not mixed in
    (run / "eval.json").write_text(json.dumps(result))
    assert main(["eval", str(run), *data, "--knn", "--no-progress", "knn.k=5"]) == 0
    result = json.loads((run / "eval.json").read_text())
    assert "linear" not in result and result["knn"]["k"] == 5
