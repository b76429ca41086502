"""Argument checks of the device check (the end-to-end runs are in tests/export/test_bundle.py)."""

import pytest

from edgessl.device.check import device_line, parse_threads
from edgessl.device.sysinfo import describe, peak_memory_mb
from edgessl.errors import EdgeSSLError


def test_parse_threads() -> None:
    assert parse_threads("1,2,4") == [1, 2, 4]
    for bad in ("", "0", "two", "1,-2"):
        with pytest.raises(EdgeSSLError, match="--threads must be"):
            parse_threads(bad)


def test_device_description() -> None:
    info = {**describe("numpy"), "peak_memory_mb": peak_memory_mb()}
    assert info["runtime_version"] != "?" and info["cores"] >= 1 and info["peak_memory_mb"] > 1
    assert device_line(info).startswith("device: ") and "numpy" in device_line(info)
