"""Export profiles: the shipped ones load for every target; bad keys, values and files are one-line errors."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from edgessl.errors import EdgeSSLError
from edgessl.export import TARGETS
from edgessl.export.profiles import PROFILE_DIR


@pytest.mark.parametrize("name", list(TARGETS))
def test_shipped_profiles_load(name: str) -> None:
    profile = TARGETS[name].profile("mobilenetv3_small_100")
    assert (PROFILE_DIR / f"{name}.yaml").is_file()
    assert profile.threads >= 1 and profile.calibration >= 1 and profile.tolerance >= 0
    assert set(profile.quantization) == set(TARGETS[name].quantization)
    assert set(profile.options) == set(TARGETS[name].options)


def _write(tmp_path: Path, text: str) -> Path:
    (tmp_path / "onnx.yaml").write_text(text)
    return tmp_path


def test_architecture_overrides_apply_to_that_architecture_only(tmp_path: Path) -> None:
    d = _write(tmp_path, "threads: 2\nquantization: {method: entropy}\n"
                         "architectures: {efficientnet_lite0: {method: percentile, keep_float: [Mul]}}\n")
    lite = TARGETS["onnx"].profile("efficientnet_lite0", d)
    other = TARGETS["onnx"].profile("resnet18", d)
    assert lite.quantization["method"] == "percentile" and lite.quantization["keep_float"] == ["Mul"]
    assert other.quantization["method"] == "entropy" and other.threads == 2
    assert other.options == {"opset": 18, "exporter": "dynamo"} and other.calibration == 300  # defaults fill the rest


def test_unknown_onnx_exporter_is_a_one_line_error(tmp_path: Path) -> None:
    profile = TARGETS["onnx"].profile("mobilenetv3_small_100", _write(tmp_path, "exporter: jit\n"))
    with pytest.raises(EdgeSSLError, match="'exporter' must be one of dynamo, torchscript; got 'jit'"):
        TARGETS["onnx"].export(None, np.zeros((1, 3, 8, 8), np.float32), tmp_path / "x.onnx", profile, {})


@pytest.mark.parametrize("text, message", [
    ("threds: 2\n", "unknown key 'threds'; did you mean 'threads'"),
    ("quantization: {activaton: int8}\n", "unknown key 'quantization.activaton'; did you mean"),
    ("quantization: {activation: int4}\n", "'activation' for mobilenetv3_small_100 must be one of uint8, int8"),
    ("threads: two\n", "'threads' must be a int"),
    ("quantization: {keep_float: [1]}\n", "list of op type names"),
    ("architectures: {mobilenetv3_small_100: {per_channel: maybe}}\n", "must be a bool"),
    ("threads: [\n", "not valid YAML"),
])
def test_bad_profiles_are_one_line_errors(tmp_path: Path, text: str, message: str) -> None:
    with pytest.raises(EdgeSSLError, match=message.replace("(", r"\(")) as info:
        TARGETS["onnx"].profile("mobilenetv3_small_100", _write(tmp_path, text))
    assert "\n" not in str(info.value)


def test_missing_profile_says_where(tmp_path: Path) -> None:
    with pytest.raises(EdgeSSLError, match="onnx.yaml' not found.*--profiles"):
        TARGETS["onnx"].profile("mobilenetv3_small_100", tmp_path)
