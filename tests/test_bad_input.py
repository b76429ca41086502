"""Every case of `tests/bad_inputs.CASES` through `edgessl.cli.main`: the exit code, ONE line on stderr naming the
problem, no traceback; and the table in docs/troubleshooting.md generated from those cases is up to date."""

from __future__ import annotations

import re
import warnings

import pytest

from edgessl.cli import main
from tests.bad_inputs import CASES, DOC, Case, Ctx, doc_with_table

PROGRESS = re.compile(r"^\s*epoch \d+/\d+:")  # tqdm bars of a run that started, on stderr too


def run_cli(argv: list[str], capsys: pytest.CaptureFixture) -> tuple[int, str, list[str]]:
    """`edgessl ARGV` in this process: (exit code, stderr, warning messages)."""
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        try:
            code = main(argv)
        except SystemExit as exc:  # argparse usage errors
            code = exc.code
    return code, capsys.readouterr().err, [str(w.message) for w in caught]


@pytest.mark.parametrize("case", CASES, ids=[c.id for c in CASES])
def test_bad_input_is_one_line(case: Case, tmp_path, monkeypatch, capsys, request):
    ctx = Ctx(tmp_path, lambda: request.getfixturevalue("tiny_checkpoint"), monkeypatch)
    try:
        code, err, caught = run_cli([case.command, *case.argv(ctx)], capsys)
    finally:
        for holder in ctx.holders:
            holder.kill()
            holder.wait()
    shows = case.shows.replace("{tmp}", str(tmp_path))
    assert code == case.code, err
    assert "Traceback" not in err
    if case.code == 0:  # a warning; the run goes on (its progress bars share stderr)
        assert any(shows in w for w in caught), caught
    else:
        lines = [ln for ln in err.splitlines() if ln.strip() and not PROGRESS.match(ln)]
        assert len(lines) == 1 and lines[0].startswith(f"edgessl {case.command}: error: "), err
        assert shows in lines[0]
    assert not (tmp_path / "PWNED").exists()  # a refused pickle ran nothing
    if case.after is not None:
        case.after(tmp_path)


def test_cases_are_enough_and_distinct():
    assert len(CASES) >= 40
    assert len({c.id for c in CASES}) == len(CASES)


def test_troubleshooting_table_is_generated_from_the_cases():
    text = DOC.read_text()
    assert doc_with_table(text) == text, \
        "docs/troubleshooting.md's bad-input table is stale: run PYTHONPATH=. python -m tests.bad_inputs"
