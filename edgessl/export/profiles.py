"""Export profiles: one YAML per target in the repository's `export/` folder holding that target's defaults.

A profile has the keys every target shares (`COMMON`: threads, warm-up and timed runs for the latency check,
calibration size, kNN tolerance), the target's own options (e.g. the ONNX opset), a `quantization` section whose
keys and types the target declares, and `architectures`: per-architecture overrides of `quantization`, so a
setting measured to be right for one network (e.g. which ops stay in float) applies to it alone.
"""

from __future__ import annotations

import difflib
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from edgessl.errors import EdgeSSLError

PROFILE_DIR = Path(__file__).resolve().parents[2] / "export"  # repo-root export/, beside the edgessl package
COMMON: dict[str, Any] = {"threads": 1, "warmup": 20, "runs": 200, "calibration": 300, "tolerance": 0.5}


@dataclass(frozen=True)
class Profile:
    """One target's resolved settings for one architecture."""

    target: str
    threads: int
    warmup: int
    runs: int
    calibration: int
    tolerance: float
    options: dict[str, Any]  # target-specific keys (e.g. opset)
    quantization: dict[str, Any]  # after the architecture's overrides


def _check(key: str, value: Any, default: Any, source: str) -> Any:
    """`value` if it has the type of `default` (ints accepted for floats), else a one-line error."""
    kind = type(default)
    if kind is float and isinstance(value, int) and not isinstance(value, bool):
        return float(value)
    if not isinstance(value, kind) or (kind is int and isinstance(value, bool)):
        raise EdgeSSLError(f"{source}: '{key}' must be a {kind.__name__} like {default!r}; got {value!r}")
    if kind is list and not all(isinstance(v, str) for v in value):
        raise EdgeSSLError(f"{source}: '{key}' must be a list of op type names; got {value!r}")
    if kind in (int, float) and value < 0:
        raise EdgeSSLError(f"{source}: '{key}' must be >= 0; got {value!r}")
    return value


def _merge(defaults: dict[str, Any], given: Any, prefix: str, source: str) -> dict[str, Any]:
    """`defaults` updated with the `given` mapping; unknown keys are errors that suggest the closest one."""
    if given is None:
        return dict(defaults)
    if not isinstance(given, dict):
        raise EdgeSSLError(f"{source}: '{prefix.rstrip('.') or 'the profile'}' must be a mapping; got {given!r}")
    out = dict(defaults)
    for key, value in given.items():
        if key not in defaults:
            close = difflib.get_close_matches(str(key), list(defaults), n=1)
            hint = f"; did you mean '{prefix}{close[0]}'?" if close else f"; valid: {', '.join(defaults)}"
            raise EdgeSSLError(f"{source}: unknown key '{prefix}{key}'{hint}")
        out[key] = _check(prefix + key, value, defaults[key], source)
    return out


def load_profile(target: str, options: dict[str, Any], quantization: dict[str, Any], arch: str,
                 directory: str | Path | None = None, choices: dict[str, tuple[str, ...]] | None = None) -> Profile:
    """Read `export/<target>.yaml` and resolve it for `arch`; `options`/`quantization` are the target's keys
    with their defaults (and so their types), `choices` the allowed values of some quantization keys.
    A missing file is an error naming where it was looked for."""
    import yaml  # here, not at the top: the torch-free device check imports edgessl.export without PyYAML

    path = Path(directory or PROFILE_DIR) / f"{target}.yaml"
    if not path.is_file():
        raise EdgeSSLError(f"export profile '{path}' not found; run from an edgessl checkout (profiles live in its "
                           "export/ folder) or pass --profiles DIR")
    try:
        data = yaml.safe_load(path.read_text()) or {}
    except yaml.YAMLError:
        raise EdgeSSLError(f"{path}: not valid YAML; check indentation and colons") from None
    if not isinstance(data, dict):
        raise EdgeSSLError(f"{path}: a profile must be a mapping of keys to values")
    source = str(path)
    data = dict(data)
    quant = _merge(quantization, data.pop("quantization", None), "quantization.", source)
    per_arch = data.pop("architectures", None) or {}
    if not isinstance(per_arch, dict):
        raise EdgeSSLError(f"{source}: 'architectures' must map architecture names to quantization overrides")
    quant = _merge(quant, per_arch.get(arch), f"architectures.{arch}.", source)
    for key, allowed in (choices or {}).items():
        if quant[key] not in allowed:
            raise EdgeSSLError(f"{source}: quantization '{key}' for {arch} must be one of {', '.join(allowed)}; "
                               f"got {quant[key]!r}")
    top = _merge({**COMMON, **options}, data, "", source)
    common = {k: top.pop(k) for k in COMMON}
    if common["calibration"] < 1 or common["runs"] < 1 or common["threads"] < 1:
        raise EdgeSSLError(f"{source}: 'calibration', 'runs' and 'threads' must be >= 1")
    return Profile(target=target, options=top, quantization=quant, **common)
