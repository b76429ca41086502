"""The config-key reference (docs/config.md), generated from the schema so it cannot drift from the code.

Every key of `edgessl.config.Config` and of each method's options section (`METHODS`), with its type, default,
allowed values and the comment written beside (or just above) its field in the source. A test regenerates the page
and fails when docs/config.md differs. Rewrite it with:  PYTHONPATH=. python -m edgessl.config_reference docs/config.md
"""

from __future__ import annotations

import ast
import dataclasses
import inspect
import io
import sys
import textwrap
import tokenize
import typing
from pathlib import Path
from typing import Any, Literal

from edgessl.config import Config
from edgessl.methods import METHODS, method_class

REWRITE = "PYTHONPATH=. python -m edgessl.config_reference docs/config.md"


def _comments(cls: type) -> dict[str, str]:
    """field name -> its source comment (the lines just above it, then the one after it), for `cls` and its bases."""
    out: dict[str, str] = {}
    for klass in reversed([k for k in cls.__mro__ if dataclasses.is_dataclass(k)]):
        source = textwrap.dedent(inspect.getsource(klass))
        notes = {tok.start[0]: tok.string.lstrip("#").strip()
                 for tok in tokenize.generate_tokens(io.StringIO(source).readline) if tok.type == tokenize.COMMENT}
        lines = source.splitlines()
        body = ast.parse(source).body[0]
        for node in getattr(body, "body", []):
            if not (isinstance(node, ast.AnnAssign) and isinstance(node.target, ast.Name)):
                continue
            above, line = [], node.lineno - 1
            while line in notes and lines[line - 1].lstrip().startswith("#"):
                above.insert(0, notes[line])
                line -= 1
            out[node.target.id] = " ".join([*above, notes.get(node.end_lineno, "")]).strip()
    return out


def _type(typ: Any, meta: dict[str, Any]) -> tuple[str, str]:
    """(type name, allowed values) of one leaf."""
    if typing.get_origin(typ) is Literal:
        return "choice", ", ".join(f"`{v}`" for v in typing.get_args(typ))
    allowed = ", ".join(f"`{v}`" for v in meta.get("choices", ()))
    if "range" in meta:
        lo, hi, lo_open = meta["range"]
        parts = ([f"{'>' if lo_open else '>='} {lo:g}"] if lo is not None else []) + \
                ([f"<= {hi:g}"] if hi is not None else [])
        allowed = ", ".join(parts)
    return getattr(typ, "__name__", str(typ)), allowed


def _default(f: dataclasses.Field) -> Any:
    return f.default_factory() if f.default is dataclasses.MISSING else f.default  # type: ignore[misc]


def _leaves(cls: type) -> list[dataclasses.Field]:
    """The fields of `cls` that hold values: not sections (their own tables) nor `Config.methods` (the methods')."""
    hints = typing.get_type_hints(cls)
    return [f for f in dataclasses.fields(cls) if not dataclasses.is_dataclass(hints[f.name]) and
            not (cls is Config and f.name == "methods")]


def _rows(cls: type, prefix: str) -> list[str]:
    """One table row per leaf key of the dataclass `cls`."""
    hints, notes, rows = typing.get_type_hints(cls), _comments(cls), []
    for f in _leaves(cls):
        kind, allowed = _type(hints[f.name], dict(f.metadata))
        default = _default(f)
        shown = "`''`" if default == "" else f"`{str(default).lower() if isinstance(default, bool) else default}`"
        note = notes.get(f.name, "").replace("|", "\\|")  # a `|` would end the table cell
        rows.append(f"| `{prefix}{f.name}` | {kind} | {shown} | {allowed} | {note} |")
    return rows


def _table(title: str, summary: str, cls: type, prefix: str) -> list[str]:
    head = ["| key | type | default | allowed | what it does |", "|---|---|---|---|---|"]
    return [f"## {title}", "", summary, "", *head, *_rows(cls, prefix), ""]


def sections() -> list[tuple[str, type]]:
    """(dotted prefix, dataclass) of every table: the top level, each `Config` section, each method's options."""
    hints = typing.get_type_hints(Config)
    return [("", Config), *[(f"{f.name}.", hints[f.name]) for f in dataclasses.fields(Config)
                            if dataclasses.is_dataclass(hints[f.name])],
            *[(f"{name}.", method_class(name).Options) for name in METHODS]]


def all_keys() -> set[str]:
    """Every leaf key a recipe can set, dotted (`train.epochs`, `ressl.tau_s`, `name`)."""
    return {prefix + f.name for prefix, cls in sections() for f in _leaves(cls)}


def reference_markdown() -> str:
    """docs/config.md: the top-level keys, each section of `Config`, then each method's section."""
    out = ["# Config keys", "",
           f"<!-- generated from the config schema (edgessl/config.py, edgessl/methods/); rewrite: {REWRITE} -->", "",
           "Every key a recipe (YAML) can set, and `key=value` can override on the command line "
           "(`edgessl pretrain RECIPE train.epochs=50`). Sections not listed are errors that suggest the closest key.",
           "See [recipes.md](recipes.md) for how recipes and overrides work, and "
           "`edgessl pretrain RECIPE --print-config` for a recipe's resolved values.", ""]
    for prefix, cls in sections():
        name = prefix.rstrip(".")
        title = "Top level" if not prefix else f"`{name}:`" if cls.__module__ == Config.__module__ else \
            f"`{name}:` (method options, used when `method: {name}`)"
        out += _table(title, (cls.__doc__ or "").strip().splitlines()[0], cls, prefix)
    return "\n".join(out).rstrip() + "\n"


if __name__ == "__main__":
    text = reference_markdown()
    if len(sys.argv) > 1:
        Path(sys.argv[1]).write_text(text)
        print(f"wrote {sys.argv[1]}")
    else:
        sys.stdout.write(text)
