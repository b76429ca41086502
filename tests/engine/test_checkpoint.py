"""Leftovers of a run killed with -9 (temp files of an interrupted save, metrics rows of a start that never saved
a checkpoint, the lock file of the killed process) are cleaned at the next start of that run: no file lost, none
duplicated."""

from __future__ import annotations

import csv
import signal

import torch

from edgessl.cli import main
from edgessl.checkpoint import remove_stale_temps, save_atomic
from edgessl.engine.run_log import HEAD, TAIL
from tests.bad_inputs import RECIPE, Ctx
from tests.tiny_run import TINY


def test_remove_stale_temps_only_takes_save_temps(tmp_path):
    save_atomic({"a": torch.zeros(1)}, tmp_path / "last.pt")
    (tmp_path / ".last.pt.x1y2.tmp").write_bytes(b"partial")
    (tmp_path / ".pruned.pt.abc.tmp").write_bytes(b"partial")
    (tmp_path / "notes.tmp").write_text("mine")
    assert [p.name for p in remove_stale_temps(tmp_path)] == [".last.pt.x1y2.tmp", ".pruned.pt.abc.tmp"]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["last.pt", "notes.tmp"]


def test_restart_after_kill_9_cleans_leftovers(tmp_path, monkeypatch, capsys):
    run = tmp_path / "run"
    ctx = Ctx(tmp_path, lambda: None, monkeypatch)
    ctx.held("run").joinpath(".last.pt.k9x1.tmp").write_bytes(bytes(1000))  # a save cut by kill -9
    ctx.holders[0].send_signal(signal.SIGKILL)
    ctx.holders[0].wait()
    with (run / "metrics.csv").open("w", newline="") as fh:  # rows of a start killed before its first checkpoint
        w = csv.DictWriter(fh, (*HEAD, *TAIL))
        w.writeheader()
        w.writerows([{"epoch": 0, "step": 2, "loss": 9.0}, {"epoch": 0, "step": 4, "loss": 8.0}])
    code = main(["pretrain", RECIPE, *TINY, "train.threads=1", "train.epochs=1", f"output_dir={run}"])
    assert code == 0, capsys.readouterr().err
    assert "removed 1 temp file(s) of an interrupted save" in capsys.readouterr().out
    assert sorted(p.name for p in run.iterdir()) == ["config.yaml", "last.pt", "metrics.csv", "tensorboard"]
    with (run / "metrics.csv").open(newline="") as fh:
        rows = list(csv.DictReader(fh))
    keys = [(r["step"], bool(r["knn_top1"])) for r in rows]
    assert len(keys) == len(set(keys)) and "9" not in {r["loss"] for r in rows}  # fresh, no repeated step
    assert torch.load(run / "last.pt", weights_only=True)["step"] == 4
