"""`edgessl eval` bad input: one-line errors (exit code 2) before any heavy work."""

import pytest

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
