"""One writer per folder: a second `edgessl pretrain` on a held run folder is refused (two real processes), and
the lock of a process killed with -9 is gone with it."""

from __future__ import annotations

import csv
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml

from edgessl.cli import main
from edgessl.folder_lock import LOCK_NAME, hold
from tests.bad_inputs import RECIPE, Ctx
from tests.tiny_run import TINY

ROOT = Path(__file__).resolve().parents[1]


def _wait_for_lock(lock: Path, pid: int, proc: subprocess.Popen, timeout: float = 300) -> None:
    """Until `lock` names `pid` (the holder took it), failing if the holder exits first."""
    deadline = time.monotonic() + timeout
    while not (lock.is_file() and lock.read_text().strip() == str(pid)):
        assert proc.poll() is None, proc.communicate()
        assert time.monotonic() < deadline, "the first run never took its lock"
        time.sleep(0.05)


def _steps(metrics: Path) -> list[tuple[str, str]]:
    """(step, kind of row) of every metrics.csv row: training rows and kNN rows."""
    with metrics.open(newline="") as fh:
        return [(r["step"], "knn" if r["knn_top1"] else "train") for r in csv.DictReader(fh)]


@pytest.mark.slow
def test_second_run_on_a_held_folder_is_refused_naming_the_holder(tmp_path, capsys):
    import edgessl.engine.trainer  # noqa: F401  imported now, so the second run reaches the folder at once

    run = tmp_path / "run"
    args = [RECIPE, *TINY, "train.threads=1", "train.epochs=1", "train.knn_every=0", f"output_dir={run}"]
    first = subprocess.Popen([sys.executable, "-m", "edgessl", "pretrain", *args], cwd=ROOT, text=True,
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        _wait_for_lock(run / LOCK_NAME, first.pid, first)
        code = main(["pretrain", *args, "optim.lr=0.03"])
        err = capsys.readouterr().err.strip()
        out, first_err = first.communicate(timeout=600)
    finally:
        first.kill()
    assert code == 2 and len(err.splitlines()) == 1 and "Traceback" not in err
    assert err.startswith("edgessl pretrain: error:") and f"in use by another edgessl process (PID {first.pid})" in err
    # the first run finished untouched: its recipe, one row per step, its checkpoint named in its summary
    assert first.returncode == 0, first_err
    assert f"checkpoint {run / 'last.pt'}" in out
    assert yaml.safe_load((run / "config.yaml").read_text())["optim"]["lr"] == 0.06
    steps = _steps(run / "metrics.csv")
    assert steps and len(steps) == len(set(steps))
    assert sorted(p.name for p in run.iterdir()) == ["config.yaml", "last.pt", "metrics.csv", "tensorboard"]


def test_lock_of_a_killed_process_is_not_stale(tmp_path, monkeypatch):
    ctx = Ctx(tmp_path, lambda: None, monkeypatch)
    folder = ctx.held("run")
    ctx.holders[0].send_signal(signal.SIGKILL)
    ctx.holders[0].wait()
    assert (folder / LOCK_NAME).read_text().strip() == str(ctx.holders[0].pid)  # the file stays, the lock does not
    with hold(folder, "output_dir"):
        assert (folder / LOCK_NAME).read_text().strip() == str(os.getpid())
    assert not any(folder.iterdir())  # the lock file goes with its holder


def test_holding_twice_in_one_process_nests_and_a_refused_start_leaves_no_folder(tmp_path):
    folder = tmp_path / "new"
    with hold(folder, "--out"), hold(folder, "output_dir"):  # prune holds --out, then its recovery run
        assert folder.is_dir()
    assert not folder.exists()  # created here and left empty: removed again
