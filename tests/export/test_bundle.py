"""`edgessl bundle` and the torch-free `edgessl-device check` of the bundle, run where torch cannot be imported."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from edgessl.device import check as device_check
from edgessl.device.cli import main as device_main
from edgessl.export.bundle_format import MANIFEST
from edgessl.file_hash import sha256_of

from .conftest import Exported, cli

ROOT = Path(__file__).resolve().parents[2]
BLOCKED = ("torch", "torchvision", "timm", "yaml")
BLOCKER = f'''import sys
class _NoTrainingStack:
    """Make torch, torchvision, timm and PyYAML unimportable, as on a board with only edgessl[device-tflite]."""
    def find_spec(self, name, path=None, target=None):
        if name.split(".")[0] in {BLOCKED!r}:
            raise ModuleNotFoundError(f"No module named '{{name}}' (blocked by the test)", name=name)
        return None
sys.meta_path.insert(0, _NoTrainingStack())
'''
# synthetic data: 200 train / 100 test images, so --samples 100 --bank 200 ship all of them: the bundle check then
# runs on the same images as `edgessl check`
SAMPLES, BANK = 100, 200


def torch_free(tmp: Path, *argv: str) -> subprocess.CompletedProcess:
    """Run `python ARGV` with torch, torchvision, timm and yaml blocked (a sitecustomize on PYTHONPATH)."""
    site = tmp / "blocker"
    site.mkdir(exist_ok=True)
    (site / "sitecustomize.py").write_text(BLOCKER)
    env = {**os.environ, "PYTHONPATH": f"{site}{os.pathsep}{ROOT}", "OMP_NUM_THREADS": "1"}
    return subprocess.run([sys.executable, *argv], capture_output=True, text=True, env=env, cwd=tmp, timeout=300)


@pytest.fixture(scope="module")
def bundles(exported: Exported, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """Bundles of the fp32 and int8 TFLite artifacts, shipping every synthetic image."""
    root = tmp_path_factory.mktemp("bundles")
    out = {}
    for precision in ("fp32", "int8"):
        out[precision] = root / precision
        assert cli("bundle", str(exported.out / f"tiny_{precision}.tflite"), "--out", str(out[precision]),
                   "--samples", str(SAMPLES), "--bank", str(BANK)) == 0
    return out


@pytest.mark.slow
def test_bundle_contents(bundles: dict[str, Path]) -> None:
    folder = bundles["int8"]
    manifest = json.loads((folder / MANIFEST).read_text())
    names = set(manifest["files"])
    assert {"tiny_int8.tflite", "tiny_int8.tflite.json", "spec.json", "images.npy", "bank.npy"} <= names
    assert all(sha256_of(folder / n) == e["sha256"] for n, e in manifest["files"].items())
    images, labels = np.load(folder / "images.npy"), np.load(folder / "labels.npy")
    assert images.dtype == np.uint8 and images.shape == (SAMPLES, 32, 32, 3)
    assert np.load(folder / "bank.npy").shape[0] == BANK == len(np.load(folder / "bank_labels.npy"))
    assert np.load(folder / "reference.npy").dtype == np.float16
    spec = json.loads((folder / "spec.json").read_text())
    assert spec["input_quantization"]["dtype"] == "int8" and spec["layout"] == "NHWC" and spec["image_size"] == 32
    assert len(set(labels.tolist())) > 1


def test_images_are_class_balanced_uint8_eval_crops() -> None:
    """A subset is class-balanced, and normalizing its uint8 images gives exactly the eval transform's tensors."""
    from edgessl.config import load_config
    from edgessl.data import MEAN, STD, balanced_subset, build_dataset, eval_transform
    from edgessl.export.bundle import _uint8_split
    from edgessl.export.bundle_format import normalize

    from .conftest import RECIPE, SIZE

    cfg = load_config(None, RECIPE)
    images, labels = _uint8_split(cfg, "test", 30)
    counts = np.bincount(labels)
    assert images.shape == (30, SIZE, SIZE, 3) and counts.max() - counts[counts > 0].min() <= 1
    full = build_dataset(cfg.data, "test", eval_transform(SIZE), labelled=True)
    expected = np.stack([full[int(i)][0].numpy() for i in balanced_subset(full.targets, 30)])
    assert np.abs(normalize(images, list(MEAN), list(STD)) - expected).max() < 1e-5


@pytest.mark.slow
@pytest.mark.parametrize("precision", ["fp32", "int8"])
def test_device_check_without_torch_matches_host_check(precision: str, bundles: dict[str, Path],
                                                        exported: Exported, tmp_path: Path) -> None:
    """The device check, run where torch/torchvision/timm/yaml cannot be imported, reproduces `edgessl check`:
    cosine mean within 1e-3 and min within 1e-2 (the reference embeddings are shipped as float16), the PyTorch
    reference kNN within 1 pt (float16 bank); for fp32 the artifact's kNN too. (int8 kNN differs by design: the
    host's bank is the artifact's own train embeddings, the board's the shipped PyTorch ones.)"""
    artifact = exported.out / f"tiny_{precision}.tflite"
    assert cli("check", str(artifact), "--tolerance", "100") == 0
    host = json.loads(artifact.with_name(artifact.name + ".check.json").read_text())
    done = torch_free(tmp_path, "-m", "edgessl.device", "check", str(bundles[precision]), "--threads", "1,2",
                      "--runs", "5", "--tolerance", "100", "--out", str(tmp_path / "result"))
    assert done.returncode == 0, done.stderr
    assert "| tflite |" in done.stdout and "device: " in done.stdout
    board = json.loads((tmp_path / "result" / "device_check.json").read_text())
    assert board["columns"] == host["columns"] and [r["threads"] for r in board["rows"]] == [None, 1, 2]
    h, b = host["rows"][1], board["rows"][1]
    assert abs(b["cosine_mean"] - h["cosine_mean"]) < 1e-3 and abs(b["cosine_min"] - h["cosine_min"]) < 1e-2
    assert abs(board["reference"]["knn_top1"] - host["reference"]["knn_top1"]) <= 1.0
    if precision == "fp32":
        assert abs(b["knn_top1"] - h["knn_top1"]) <= 1.0
    assert b["latency_ms"] > 0 and b["note"].startswith("p90 ") and board["device"]["peak_memory_mb"] > 0


@pytest.mark.slow
def test_torch_free_cli(bundles: dict[str, Path], tmp_path: Path) -> None:
    """Without torch: `edgessl --help` works, a torch command is one line naming the extra (exit 2), and a changed
    bundle file is a one-line sha256 error (exit 2)."""
    assert torch_free(tmp_path, "-m", "edgessl", "--help").returncode == 0
    done = torch_free(tmp_path, "-m", "edgessl", "eval", "runs/x")
    assert done.returncode == 2 and "pip install 'edgessl[train]'" in done.stderr
    assert len(done.stderr.strip().splitlines()) == 1
    changed = tmp_path / "changed"
    shutil.copytree(bundles["fp32"], changed)
    labels = np.load(changed / "labels.npy")
    np.save(changed / "labels.npy", labels[::-1])
    done = torch_free(tmp_path, "-m", "edgessl.device", "check", str(changed))
    assert done.returncode == 2 and "labels.npy' does not match its sha256" in done.stderr
    assert len(done.stderr.strip().splitlines()) == 1


@pytest.mark.slow
def test_bad_bundles_are_one_line(bundles: dict[str, Path], tmp_path: Path, monkeypatch, capsys) -> None:
    newer = tmp_path / "newer"
    shutil.copytree(bundles["fp32"], newer)
    manifest = json.loads((newer / MANIFEST).read_text())
    (newer / MANIFEST).write_text(json.dumps({**manifest, "format_version": 99}))
    assert device_main(["check", str(newer)]) == 2
    assert "bundle format 99, newer than this edgessl reads" in capsys.readouterr().err
    monkeypatch.setitem(device_check.RUNTIMES, "tflite", ("no_such_runtime", "ai-edge-litert", "device-tflite"))
    assert device_main(["check", str(bundles["fp32"])]) == 2
    err = capsys.readouterr().err.strip()
    assert "pip install 'edgessl[device-tflite]'" in err and len(err.splitlines()) == 1
    assert device_main(["check", str(tmp_path)]) == 2
    assert "is not an edgessl bundle" in capsys.readouterr().err


@pytest.mark.slow
def test_bundle_refuses_a_non_empty_folder(exported: Exported, tmp_path: Path, capsys) -> None:
    (tmp_path / "keep.txt").write_text("mine")
    assert cli("bundle", str(exported.out / "tiny_fp32.onnx"), "--out", str(tmp_path)) == 2
    assert "already exists and is not empty" in capsys.readouterr().err
    assert (tmp_path / "keep.txt").read_text() == "mine"


@pytest.mark.slow
def test_export_with_bundle(checkpoint: Path, tmp_path: Path) -> None:
    assert cli("export", str(checkpoint), "--target", "onnx", "--fp32", "--out", str(tmp_path), "--name", "b",
               "--bundle", "--tolerance", "100") == 0
    folder = tmp_path / "b_fp32_onnx_bundle"
    spec = json.loads((folder / "spec.json").read_text())
    assert spec["artifact"] == "b_fp32.onnx" and (folder / MANIFEST).is_file()
    assert len(np.load(folder / "images.npy")) == SAMPLES and len(np.load(folder / "bank.npy")) == BANK
