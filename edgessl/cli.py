"""The `edgessl` command: one sub-command per module in `edgessl.commands`.

Each command module exposes `HELP` (one line), `add_arguments(parser)` and `run(args) -> int`, and keeps
heavy imports (torch, runtimes) inside `run` so that `edgessl --help` is instant.
"""

from __future__ import annotations

import argparse
import importlib
import sys
import warnings
from typing import NoReturn

from edgessl import __version__
from edgessl.errors import EdgeSSLError

COMMANDS = ("pretrain", "eval", "report", "export", "check", "prune")


class _Parser(argparse.ArgumentParser):
    """Usage errors as one line, like every other error (argparse would print the usage first); exit code 2."""

    def error(self, message: str) -> NoReturn:
        self.exit(2, f"{self.prog}: error: {message} (see {self.prog} --help)\n")


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(
        prog="edgessl",
        description="Pretrain small image encoders self-supervised (ReSSL, peers) and ship them to phones and boards.",
        epilog="Run `edgessl <command> --help` for the options of one command.",
    )
    parser.add_argument("--version", action="version", version=f"edgessl {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="<command>", required=True)
    for name in COMMANDS:
        module = importlib.import_module(f"edgessl.commands.{name}")
        p = sub.add_parser(name, help=module.HELP, description=module.__doc__,
                           formatter_class=argparse.RawDescriptionHelpFormatter)
        module.add_arguments(p)
        p.set_defaults(_run=module.run)
    return parser


def _end_progress_bars() -> None:
    """Close the progress bars an error interrupted, so its message starts a line of its own."""
    std = sys.modules.get("tqdm.std")
    for bar in list(getattr(getattr(std, "tqdm", None), "_instances", ())):
        bar.close()


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args, extra = parser.parse_known_args(argv)
    # `key=value` overrides may also follow options (`pretrain r.yaml --resume train.epochs=3`)
    if extra and hasattr(args, "overrides") and all("=" in e and not e.startswith("-") for e in extra):
        args.overrides = [*args.overrides, *extra]
    elif extra:
        parser.error(f"unrecognized arguments: {' '.join(extra)}")
    # warnings (corrupt images skipped, an empty recipe, ...) as one line each, like errors
    warnings.formatwarning = lambda message, *_, **__: f"edgessl {args.command}: warning: {message}\n"
    try:
        return int(args._run(args) or 0)
    except EdgeSSLError as exc:
        _end_progress_bars()
        print(f"edgessl {args.command}: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"edgessl {args.command}: interrupted", file=sys.stderr)
        return 130
