"""`edgessl prune` bad input: one line on stderr, exit code 2."""

from __future__ import annotations

import pytest
import torch

from edgessl.cli import main
from edgessl.pruning.pipeline import prune_checkpoint


@pytest.mark.parametrize("options, words", [
    (["--macs", "1.5"], "--macs must be a ratio strictly between 0 and 1"),
    (["--macs", "0"], "--macs must be a ratio strictly between 0 and 1"),
    (["--params", "-0.2"], "--params must be a ratio strictly between 0 and 1"),
    (["--recover-epochs", "-1"], "--recover-epochs must be >= 0"),
])
def test_bad_options(tmp_path, capsys, mnv3_checkpoint, options, words):
    assert main(["prune", str(mnv3_checkpoint), *options, "--out", str(tmp_path)]) == 2
    err = capsys.readouterr().err.strip()
    assert words in err and len(err.splitlines()) == 1 and err.startswith("edgessl prune: error:")


def test_checkpoints_that_are_not_unpruned_edgessl_encoders(tmp_path, capsys, mnv3_checkpoint):
    torch.save({"weight": torch.zeros(3)}, tmp_path / "plain.pt")
    pruned = prune_checkpoint(mnv3_checkpoint, macs=0.5, recover_epochs=0, out=tmp_path / "p", log=lambda s: None)
    for path, words in ((tmp_path / "plain.pt", "is not an edgessl checkpoint"),
                        (tmp_path / "missing.pt", "not found"),
                        (pruned.checkpoint, "is already pruned")):
        assert main(["prune", str(path), "--macs", "0.5", "--out", str(tmp_path / "out")]) == 2
        err = capsys.readouterr().err.strip()
        assert words in err and len(err.splitlines()) == 1, err
