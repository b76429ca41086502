"""Self-supervised methods, one module each, chosen by the recipe's `method:` key.

Adding a method is one module (a `Method` subclass with its `Options` dataclass; see `base.py`) and one line in
`METHODS`. A module is imported only when its method is used, so the peers' optional `lightly` stays optional.
"""

from __future__ import annotations

import dataclasses
import difflib
import importlib
from typing import Any

from edgessl.config import Config, build_section
from edgessl.errors import EdgeSSLError
from edgessl.methods.base import Context, Method, StepOutput

METHODS = {  # name -> "module:class"
    "ressl": "edgessl.methods.ressl:ReSSL",
    "infonce": "edgessl.methods.infonce:InfoNCE",
    "simclr": "edgessl.methods.simclr:SimCLR",
    "moco_v2": "edgessl.methods.moco_v2:MoCoV2",
    "byol": "edgessl.methods.byol:BYOL",
}

__all__ = ["METHODS", "Context", "Method", "StepOutput", "build_method", "describe", "ignored_note", "method_class",
           "resolve"]


def method_class(name: str) -> type[Method]:
    """The `Method` subclass registered as `name`, or a one-line error listing the methods."""
    if name not in METHODS:
        close = difflib.get_close_matches(name, METHODS, n=1)
        hint = f" (did you mean '{close[0]}'?)" if close else ""
        raise EdgeSSLError(f"unknown method '{name}'{hint}; choose one of: {', '.join(METHODS)}")
    module, cls = METHODS[name].split(":")
    return getattr(importlib.import_module(module), cls)


def _options(cfg: Config) -> tuple[type[Method], Any]:
    """The recipe's method class and its options. Every method section present is checked, and a section that
    names no method is an error."""
    for section, values in cfg.methods.items():
        if section not in METHODS:
            close = difflib.get_close_matches(section, [*METHODS, *dataclasses.asdict(Config()).keys()], n=1)
            hint = f"; did you mean '{close[0]}'?" if close else f"; method sections are {', '.join(METHODS)}"
            raise EdgeSSLError(f"recipe '{cfg.name}': unknown config section '{section}'{hint}")
        build_section(method_class(section).Options, values, f"{section}.", f"recipe '{cfg.name}'")
    cls = method_class(cfg.method)
    return cls, build_section(cls.Options, cfg.methods.get(cfg.method, {}), f"{cfg.method}.", f"recipe '{cfg.name}'")


def resolve(cfg: Config) -> tuple[type[Method], Any]:
    """`_options`, checked against the rest of the recipe (`Method.check`), with the defaults written back into
    `cfg` so the saved config is complete."""
    cls, options = _options(cfg)
    cfg.methods[cfg.method] = dataclasses.asdict(options)
    cls.check(cfg, options)
    return cls, options


def build_method(cfg: Config, backbone: Any, ctx: Context) -> Method:
    """The recipe's method around `backbone`."""
    cls, options = resolve(cfg)
    return cls(cfg, options, backbone, ctx)


def ignored_note(cfg: Config) -> str:
    """"" or a note naming the recipe's sections of other methods, which change nothing (e.g. `ressl.tau_s=0.2`
    on an infonce recipe): said at start-up, so a user does not read a run as trained with them."""
    other = [name for name in cfg.methods if name != cfg.method]
    if not other:
        return ""
    if len(other) == 1:
        return f"ignored: the {other[0]}: section (method is {cfg.method}; method={other[0]} uses it)"
    return f"ignored: the {', '.join(f'{n}:' for n in other)} sections (method is {cfg.method})"


def describe(cfg: Config) -> str:
    """"<method>: <the loss that trains>", e.g. for the start-up line, the report and the model card."""
    cls, options = _options(cfg)
    return f"{cls.name}: {cls.describe(options)}"
