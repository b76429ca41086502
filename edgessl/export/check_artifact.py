"""`edgessl check` and `edgessl bundle`'s way to an exported artifact's encoder: the artifact's target and metadata,
the checkpoint it was exported from, the recipe's data replaced by `--data`, and the re-run check of one artifact."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from edgessl.errors import EdgeSSLError
from edgessl.export import Target, target_of
from edgessl.export.check import reference
from edgessl.export.consumers import consumer_rows, resolve
from edgessl.export.pipeline import (Result, artifact_row, check_loaders, first_image, pytorch_row, read_artifact,
                                     table_header)
from edgessl.export.plan import check_tolerance, checked_encoder
from edgessl.export.table import write_table

if TYPE_CHECKING:
    from edgessl.models.encoder_loading import LoadedEncoder


FOLDER_FORMATS = ("imagefolder", "cifar10", "cifar100", "stl10")


def data_overrides(data: str, recipe_format: str) -> list[str]:
    """`--data PATH` as recipe overrides: a .npz file, or a folder (the recipe's folder format, else imagefolder)."""
    path = Path(data)
    if path.suffix == ".npz":
        return ["data.format=npz", f"data.root={path}"]
    if path.is_dir():
        return [f"data.format={recipe_format if recipe_format in FOLDER_FORMATS else 'imagefolder'}",
                f"data.root={path}"]
    raise EdgeSSLError(f"--data '{data}' is neither a .npz file nor a folder")


def artifact_encoder(path: Path, checkpoint: str | Path | None, overrides: Sequence[str], data: str | None
                     ) -> tuple[Target, dict[str, Any], LoadedEncoder]:
    """An artifact's target and metadata, and the encoder it was exported from (its metadata's checkpoint, or
    `checkpoint`) with `data` (a .npz or folder) and then `overrides` applied to the recipe."""
    from edgessl.config import config_from_dict

    target = target_of(path)
    target.require()
    meta = read_artifact(target, path)
    source = checkpoint or meta.get("checkpoint")
    if not source:
        raise EdgeSSLError(f"'{path}' has no edgessl metadata naming its checkpoint; pass --checkpoint PATH")
    enc = checked_encoder(source, overrides)
    if data:
        enc.cfg = config_from_dict(enc.cfg.to_dict(), data_overrides(data, enc.cfg.data.format) + list(overrides))
    return target, meta, enc


def check_artifact(artifact: str | Path, checkpoint: str | Path | None = None, overrides: Sequence[str] = (),
                   tolerance: float | None = None, profiles: str | Path | None = None,
                   data: str | None = None, consumers: str = "") -> Result:
    """Re-run the on-device check of one exported artifact; the table goes beside it (`<file>.check.md/json`).

    `data` (a .npz or a folder) replaces the recipe's data; `overrides` are applied after it; `consumers` adds
    a row per other runtime the artifact is also run in (`edgessl.export.consumers.resolve`)."""
    check_tolerance(tolerance)
    path = Path(artifact)
    if not path.is_file():
        raise EdgeSSLError(f"artifact '{path}' not found")
    target, meta, enc = artifact_encoder(path, checkpoint, overrides, data)
    users = resolve(consumers, [target.name])
    profile = target.profile(enc.info["arch"], profiles)
    tol = profile.tolerance if tolerance is None else tolerance
    loaders = check_loaders(enc)
    ref = reference(enc.model, *loaders, enc.cfg.knn.k, enc.cfg.knn.temperature)
    image = first_image(loaders)
    row = artifact_row(target, meta.get("precision", "?"), path, profile, ref, loaders, image, tol)
    rows = [pytorch_row(enc, ref, image, profile.threads, profile.warmup, profile.runs), row,
            *consumer_rows(users, target, row.precision, path, profile, ref, loaders, image, tol, row)]
    md_path, json_path = path.with_name(path.name + ".check.md"), path.with_name(path.name + ".check.json")
    md = write_table(rows, table_header(enc, ref, tol), md_path, json_path)
    return Result(rows, md, md_path, json_path)
