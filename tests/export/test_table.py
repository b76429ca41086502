"""The export table: every column in every JSON row, one Markdown line per artifact, notes where int8 loses."""

from __future__ import annotations

import pytest

from edgessl.export import TARGETS
from edgessl.export.check import paired_latency_ms
from edgessl.export.consumers import CONSUMERS
from edgessl.export.table import COLUMNS, Row, markdown, status

from .conftest import Exported

# with OpenCV installed, the ONNX artifacts also get an OpenCV DNN row each, after every target's rows
CONSUMER_ROWS = [("onnx", p) for p in ("fp32", "int8")] if CONSUMERS["opencv"].installed() else []


def test_status_is_the_tolerance_on_the_knn_drop() -> None:
    assert status(-0.5, 0.5) == "pass" and status(-0.51, 0.5) == "fail" and status(1.0, 0.0) == "pass"
    assert status(0.0, -1.0) == "fail" and status(2.0, -1.0) == "pass"  # negative: demands a gain


def test_markdown_marks_failures() -> None:
    header = {"arch": "a", "image_size": 32, "tolerance": 0.5,
              "reference": {"knn_top1": 50.0, "k": 20, "temperature": 0.1, "num_train": 10, "num_test": 5}}
    row = Row("onnx", "onnxruntime", "int8", "fail", "x.onnx", 1.0, 0.9, 0.5, 40.0, -10.0, 0.3, 0.8, 1, "a|b")
    text = markdown([row], header)
    assert "❌ fail" in text and "-10.00" in text and "0.80x" in text and "a\\|b" in text


@pytest.mark.slow
def test_table_json_has_every_column(exported: Exported) -> None:
    table = exported.table
    assert table["columns"] == list(COLUMNS)
    assert [(r["target"], r["precision"]) for r in table["rows"]] == [("pytorch", "fp32")] + [
        (t, p) for t in TARGETS for p in ("fp32", "int8")] + CONSUMER_ROWS
    assert all(r["runtime"].startswith("opencv ") for r in table["rows"][1 + 2 * len(TARGETS):])
    for row in table["rows"]:
        assert set(row) == set(COLUMNS)
        assert all(row[c] is not None for c in COLUMNS if c not in ("speedup", "note"))
    assert all(r["speedup"] > 0 for r in table["rows"] if r["precision"] == "int8" and "opencv" not in r["runtime"])
    assert table["reference"]["num_test"] == 100 and table["arch"] == "mobilenetv3_small_100"
    md = (exported.out / "tiny_benchmark.md").read_text()
    assert md.count("\n| ") == 1 + len(table["rows"]) and "Δ top-1 (pt)" in md


@pytest.mark.slow
def test_forced_tolerance_failure_exits_nonzero(exported: Exported) -> None:
    assert exported.code == 1  # the fixture makes every artifact miss its tolerance
    statuses = [r["status"] for r in exported.table["rows"]]
    assert statuses == ["pass"] + ["fail"] * (6 + len(CONSUMER_ROWS))  # the PyTorch row is the reference


@pytest.mark.slow
def test_int8_not_faster_is_explained(exported: Exported) -> None:
    for row in exported.table["rows"]:
        if row["precision"] == "int8" and row["speedup"] is not None and row["speedup"] < 1.05:
            assert row["note"].startswith("int8 ") and "fp32" in row["note"]


@pytest.mark.slow
def test_run_folder_gets_the_table_for_the_report(exported: Exported) -> None:
    assert exported.run_table == exported.table


def test_paired_latency_interleaves_the_runners() -> None:
    """fp32 and int8 of a target are timed in alternating rounds (warm-up + runs each), so drift hits both."""
    calls: list[str] = []
    runners = [lambda x, n=n: calls.append(n) for n in "ab"]
    latencies = paired_latency_ms(runners, None, warmup=2, runs=3, rounds=2)
    assert len(latencies) == 2 and all(t >= 0 for t in latencies)
    assert calls == ["a"] * 5 + ["b"] * 5 + ["a"] * 5 + ["b"] * 5
