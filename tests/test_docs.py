"""Docs that cannot drift from the code.

Every `edgessl ...` command in a shell block (a fenced block without a language, or `bash`/`sh`/`shell`) of README.md
and docs/*.md runs in this process through `edgessl.cli.main` (shlex-split; `\\` continues a line, `# ...` ends it;
`torchrun ... -m edgessl ...` and `python -m edgessl ...` count too), so a renamed option, recipe or key fails here:

- `pretrain` with a recipe the repo has: the command plus `--print-config` (the recipe and every override checked
  as start-up checks them, nothing trained);
- `export` whose checkpoint or run folder the repo does not have (a user's run): that path replaced by a tiny
  checkpoint, then `--dry-run` into a temporary `--out` (targets, precisions, names and overrides checked, nothing
  converted);
- any other command whose files the repo does not have (a user's run, image folder, artifact or bundle): parsed by
  the command's parser only, and `--help` of every command documented runs once; `edgessl-device` likewise.

The measured tables in docs/benchmarks.md each carry a stamp (`> **Measured** at or before commit `<hash>` (date) ·
command: `...``) naming a commit this repository has; every `recipes/*.yaml` and every `section.key=` the docs name
must exist, and every relative link must reach an existing page and heading.
"""

from __future__ import annotations

import re
import shlex
import subprocess
from pathlib import Path

import pytest

from edgessl import cli
from edgessl.config_reference import METHODS, all_keys
from edgessl.device import cli as device_cli

ROOT = Path(__file__).resolve().parents[1]
PAGES = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
FENCE = re.compile(r"^```(\w*)\n(.*?)^```", re.M | re.S)
SHELL = ("", "bash", "sh", "shell")
COMMAND = re.compile(r"^(?:\S.*\s-m |\$ )?(edgessl|edgessl-device|edgessl\.device)\s+(.*)$")
STAMP = re.compile(r"^> \*\*Measured\*\* at (?:or before )?commit `([0-9a-f]{7,40})` \(\d{4}-\d{2}-\d{2}\)"
                   r".* · command: `")


def documented_commands() -> list[tuple[str, str, list[str]]]:
    """(page, line, argv after the program) of every edgessl command in a shell block; argv[0] is the program."""
    found = []
    for page in PAGES:
        for lang, body in FENCE.findall(page.read_text()):
            if lang not in SHELL:
                continue
            for line in body.replace("\\\n", " ").splitlines():
                match = COMMAND.match(re.split(r"\s#", line.strip())[0])  # `  # ...` ends a command
                if match:
                    program = "edgessl" if match.group(1) == "edgessl" else "edgessl-device"
                    found.append((page.name, line.strip(), [program, *shlex.split(match.group(2))]))
    return found


COMMANDS = documented_commands()


def _exists(path: str) -> bool:
    return (ROOT / path).exists()


def _parse_only(argv: list[str]) -> None:
    """The command's parser accepts argv (options and their values; `key=value` overrides anywhere)."""
    if argv[0] == "edgessl-device":
        device_cli.build_parser().parse_args(argv[1:])
        return
    args, extra = cli.build_parser().parse_known_args(argv[1:])
    assert all("=" in e and not e.startswith("-") for e in extra), f"unrecognized arguments: {extra}"


def test_every_page_has_commands():
    pages = {page for page, _, _ in COMMANDS}
    assert {"README.md", "recipes.md", "export.md", "board.md", "distributed.md"} <= pages, pages


@pytest.mark.parametrize("page, line, argv", COMMANDS, ids=[f"{p}:{line[:60]}" for p, line, _ in COMMANDS])
def test_documented_command_runs(page, line, argv, tiny_checkpoint, tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(ROOT)
    if argv[0] == "edgessl-device" or argv[1] not in ("pretrain", "export"):
        _parse_only(argv)
        return
    command, rest = argv[1], argv[2:]
    if command == "pretrain":
        assert _exists(rest[0]), f"{page}: recipe {rest[0]} is not in the repo"
        code = cli.main([command, *rest, "--print-config"])
    else:  # export: a user's checkpoint or run folder becomes the tiny checkpoint
        paths = [a for a in cli.build_parser().parse_known_args(argv[1:])[0].overrides if "=" not in a]
        rest = [str(tiny_checkpoint) if a in paths and not _exists(a) else a for a in rest]
        first = [] if paths else [str(tiny_checkpoint)]  # no checkpoint: export would take the newest runs/*/last.pt
        code = cli.main([command, *first, *rest, "--out", str(tmp_path / "out"), "--dry-run"])
    assert code == 0, f"{page}: `{line}` -> exit {code}: {capsys.readouterr().err}"


@pytest.mark.parametrize("program, command", sorted({(a[0], a[1]) for _, _, a in COMMANDS}))
def test_help_of_each_documented_command(program, command, capsys):
    main = device_cli.main if program == "edgessl-device" else cli.main
    with pytest.raises(SystemExit) as done:
        main([command, "--help"])
    assert done.value.code == 0


def _git(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run(["git", *args], cwd=ROOT, capture_output=True, text=True)


def test_every_benchmark_table_is_stamped_with_a_known_commit():
    lines = (ROOT / "docs" / "benchmarks.md").read_text().splitlines()
    stamp, missing, commits = None, [], set()
    for i, line in enumerate(lines):
        if line.startswith("#"):
            stamp = None
        elif STAMP.match(line):
            stamp = STAMP.match(line).group(1)
        elif line.startswith("|---") and lines[i - 1].startswith("|"):
            if stamp is None:
                missing.append(f"line {i}: {lines[i - 1][:60]}")
            commits.add(stamp)
    assert not missing, "tables without a '> **Measured** at ... commit' stamp above them:\n" + "\n".join(missing)
    if _git("rev-parse", "--git-dir").returncode:
        pytest.skip("not a git checkout: the stamps' commits cannot be looked up")
    unknown = [c for c in commits - {None} if _git("cat-file", "-e", f"{c}^{{commit}}").returncode]
    assert not unknown, f"stamps name commits this repository does not have: {unknown}"


def test_recipes_and_keys_named_in_the_docs_exist():
    text = "\n".join(page.read_text() for page in PAGES)
    recipes = set(re.findall(r"recipes/[\w.-]+\.yaml", text))
    assert recipes and not [r for r in recipes if not _exists(r)], [r for r in recipes if not _exists(r)]
    sections = ("data", "model", "optim", "train", "knn", "dist", "distill", *METHODS)
    named = set(re.findall(rf"\b((?:{'|'.join(sections)})\.\w+)=", text))
    assert named and not named - all_keys(), f"keys the config no longer has: {sorted(named - all_keys())}"


def _anchor(heading: str) -> str:
    """The forge's anchor of a Markdown heading: lower case, punctuation dropped, spaces as hyphens."""
    return re.sub(r"[^\w\- ]", "", heading.strip().lower()).replace(" ", "-")


def test_relative_links_reach_a_page_and_heading():
    broken = []
    for page in PAGES:
        for target in re.findall(r"\]\(([^)\s]+)\)", page.read_text()):
            if re.match(r"\w+://", target):
                continue
            path, _, anchor = target.partition("#")
            dest = (page.parent / path).resolve() if path else page
            if not dest.exists():
                broken.append(f"{page.name}: {target} (no such file)")
            elif anchor and dest.suffix == ".md" and anchor not in {
                    _anchor(h) for h in re.findall(r"^#+ (.*)$", dest.read_text(), re.M)}:
                broken.append(f"{page.name}: {target} (no such heading)")
    assert not broken, "\n".join(broken)
