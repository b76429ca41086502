"""`edgessl pretrain RECIPE --print-config`: the recipe checked as start-up checks it, printed in full with the
derived values, nothing trained and no run folder made."""

from __future__ import annotations

import yaml

from edgessl.cli import main
from edgessl.config import config_from_dict


def test_print_config_shows_the_resolved_recipe_and_derived_values(tmp_path, capsys):
    run = tmp_path / "run"
    assert main(["pretrain", "recipes/quickstart.yaml", "train.epochs=2", f"output_dir={run}", "method=ressl",
                 "ressl.queue_size=1024", "ressl.infonce_warmup_epochs=4", "--print-config"]) == 0
    out = capsys.readouterr().out
    recipe = yaml.safe_load(out)  # the derived values are comments: the output is a valid recipe
    cfg = config_from_dict(recipe)
    assert cfg.train.epochs == 2 and recipe["ressl"]["queue_size"] == 1024  # the method's options filled in
    for line in ("# global batch: 128", "# scaled lr: 0.03",
                 "# train images: 2000; steps per epoch: 15; total steps: 30",
                 "# queue turnover: ressl.queue_size=1024 holds the keys of 8 steps",
                 "# loss: ressl: InfoNCE for 4 epochs, then the relation loss", "InfoNCE warm-up: steps 0-59"):
        assert line in out, out
    assert not run.exists()


def test_print_config_for_several_processes_and_missing_data(capsys):
    argv = ["pretrain", "recipes/mobilenetv3_small.yaml", "data.root=/no/such/imagenet", "--nproc", "8",
            "--print-config"]
    assert main(argv) == 0  # checked for 8 processes, not re-launched through torchrun
    out = capsys.readouterr().out
    assert "# processes: 8" in out and "local batch: 128 a process" in out and "teacher BatchNorm: shuffle" in out
    assert "# train images: unknown here (data.root" in out  # no ImageNet here: said, not an error


def test_print_config_refuses_what_start_up_refuses(capsys):
    assert main(["pretrain", "recipes/quickstart.yaml", "infonce.queue_size=1000", "--print-config"]) == 2
    err = capsys.readouterr().err
    assert "not a multiple of the global batch" in err and len(err.strip().splitlines()) == 1


def test_print_config_says_which_method_sections_are_ignored(capsys):
    """An option of another method changes nothing; the start-up line and --print-config say so."""
    assert main(["pretrain", "recipes/quickstart.yaml", "--print-config"]) == 0
    assert "ignored:" not in capsys.readouterr().out
    assert main(["pretrain", "recipes/quickstart.yaml", "ressl.tau_s=0.2", "--print-config"]) == 0
    out = capsys.readouterr().out
    assert "# ignored: the ressl: section (method is infonce; method=ressl uses it)" in out
    assert main(["pretrain", "recipes/quickstart.yaml", "method=ressl", "--print-config"]) == 0
    assert "# ignored: the infonce: section (method is ressl; method=infonce uses it)" in capsys.readouterr().out
