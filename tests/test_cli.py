"""The `edgessl` command: help, and bad input as one line on stderr with exit code 2 (no traceback)."""

import subprocess
import sys

import pytest

from edgessl.cli import COMMANDS, main


def test_help_lists_every_command(capsys):
    with pytest.raises(SystemExit) as done:
        main(["--help"])
    assert done.value.code == 0
    out = capsys.readouterr().out
    assert all(name in out for name in COMMANDS)


@pytest.mark.parametrize("argv, words", [
    (["pretrain", "nope.yaml"], "recipe 'nope.yaml' not found"),
    (["pretrain", "recipes/quickstart.yaml", "model.arch=mobilenet_v9"], "unknown model.arch 'mobilenet_v9': not a timm model; did you mean"),
    (["pretrain", "recipes/quickstart.yaml", "data.format=imagefolder", "data.root=/no/such/dir"], "/no/such/dir"),
    (["pretrain", "recipes/quickstart.yaml", "infonce.queue_size=1000"], "not a multiple of the global batch"),
    (["pretrain", "recipes/quickstart.yaml", "train.epochz=3"], "did you mean 'train.epochs'"),
])
def test_pretrain_bad_input_is_one_line(tmp_path, capsys, argv, words):
    assert main([*argv, f"output_dir={tmp_path}"]) == 2
    err = capsys.readouterr().err.strip()
    assert words in err and len(err.splitlines()) == 1 and err.startswith("edgessl pretrain: error:")


def test_empty_image_folder_is_one_line(tmp_path, capsys):
    (tmp_path / "data" / "train").mkdir(parents=True)
    assert main(["pretrain", "recipes/quickstart.yaml", "data.format=imagefolder", f"data.root={tmp_path / 'data'}",
                 f"output_dir={tmp_path / 'run'}"]) == 2
    err = capsys.readouterr().err.strip()
    assert str(tmp_path / "data") in err and len(err.splitlines()) == 1


def test_module_entry_point_runs():
    done = subprocess.run([sys.executable, "-m", "edgessl", "pretrain", "--help"], capture_output=True, text=True)
    assert done.returncode == 0 and "key=value" in done.stdout


def test_export_takes_overrides_after_options(tmp_path, capsys):
    # parsed as CHECKPOINT + override (not rejected by argparse), so the error is about the missing checkpoint
    assert main(["export", str(tmp_path / "nope.pt"), "--target", "onnx", "data.train_samples=10"]) == 2
    assert "nope.pt' not found" in capsys.readouterr().err


def test_pretrain_summary_names_each_knn_once(tmp_path, capsys):
    from tests.tiny_run import TINY

    assert main(["pretrain", "recipes/quickstart.yaml", *TINY, "train.epochs=1", "train.knn_every=0",
                 f"output_dir={tmp_path}"]) == 0
    done = [line for line in capsys.readouterr().out.splitlines() if line.startswith("done:")]
    assert len(done) == 1 and done[0].count("(epoch") == 1 and "(epoch 1)" in done[0]
