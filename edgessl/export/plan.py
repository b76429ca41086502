"""What an export will do, resolved before anything is converted: the checks of its inputs, the encoder, the
targets' profiles, the artifacts' names. `export_checkpoint` runs a plan; `edgessl export --dry-run` prints one
(`describe`) without converting anything and without creating the output folder.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from edgessl.checkpoint import RunFolder
from edgessl.errors import EdgeSSLError
from edgessl.export import PRECISIONS, TARGETS, Target, get_target
from edgessl.export.consumers import Consumer, resolve
from edgessl.export.profiles import Profile

if TYPE_CHECKING:
    from edgessl.export.qat import QatSettings
    from edgessl.models.encoder_loading import LoadedEncoder


def check_tolerance(tolerance: float | None) -> None:
    """`--tolerance`: a finite drop in points >= 0 (a negative one would fail a perfect artifact)."""
    if tolerance is not None and not (np.isfinite(tolerance) and tolerance >= 0):
        raise EdgeSSLError(f"--tolerance must be a kNN top-1 drop in points >= 0 (e.g. 0.5); got {tolerance}")


def _check_name(name: str, given: bool) -> None:
    """Artifact base names are plain file names: `../x` would write outside --out."""
    if not name.strip() or name in (".", "..") or "/" in name or "\\" in name:
        which = "--name" if given else "the recipe's name (set --name)"
        raise EdgeSSLError(f"{which} {name!r} must be a plain file name (no '/' or '..'); the artifacts go into "
                           "--out")


def checked_encoder(checkpoint: str | Path, overrides: Sequence[str]) -> LoadedEncoder:
    """Load the encoder and its recipe; refuse one whose mean/std differ from what the eval transform applies."""
    from edgessl.data import MEAN, STD
    from edgessl.models.encoder_loading import load_trained_encoder

    enc = load_trained_encoder(checkpoint, overrides)
    for key, used in (("mean", MEAN), ("std", STD)):
        if not np.allclose(enc.info.get(key, used), used):
            raise EdgeSSLError(f"'{enc.path}': encoder {key} {enc.info[key]} differs from the {key} edgessl's eval "
                               f"transform uses {list(used)}; calibration and check would feed the wrong input")
    return enc


def _refuse_other_export(table: Path, checkpoint: Path) -> None:
    """Exports of two checkpoints under one name would overwrite each other's artifacts: refuse before writing."""
    if not table.is_file():
        return
    try:
        previous = Path(json.loads(table.read_text())["checkpoint"])
    except (OSError, ValueError, KeyError, TypeError):
        return  # not a table edgessl wrote in this layout: nothing to compare
    if previous.resolve() != checkpoint.resolve():
        raise EdgeSSLError(f"'{table.parent}' already holds an export named '{table.stem.removesuffix('_benchmark')}' "
                           f"of another checkpoint ({previous}); pass --name NAME or --out DIR to keep it")


@dataclass
class ExportPlan:
    """An export resolved and checked: what `export_checkpoint` will write, and with which settings."""

    enc: LoadedEncoder
    targets: list[Target]
    variants: list[tuple[str, str]]  # (precision, method): ("fp32", ""), ("int8", "ptq"), ("int8", "qat")
    name: str
    out: Path
    profiles: dict[str, Profile]
    tolerances: dict[str, float]
    consumers: list[Consumer]
    calib: int | None  # --calib, or None for each profile's own
    qat: QatSettings | None

    def artifact(self, target: Target, precision: str, method: str) -> str:
        """The artifact's file name in the output folder."""
        return f"{self.name}_{precision}{'_qat' if method == 'qat' else ''}{target.suffix}"

    def calibration(self, target: Target) -> int:
        return self.profiles[target.name].calibration if self.calib is None else self.calib

    @property
    def table(self) -> Path:
        """The benchmark table's path without suffix (`.md` and `.json` are written)."""
        return self.out / f"{self.name}_benchmark"


def plan_export(checkpoint: str | Path, targets: Sequence[str], precisions: Sequence[str], out_dir: str | Path,
                calib: int | None = None, tolerance: float | None = None, overrides: Sequence[str] = (),
                profiles: str | Path | None = None, name: str | None = None, consumers: str = "auto",
                qat: QatSettings | None = None, log: Callable[[str], None] = print) -> ExportPlan:
    """Check an export's inputs (targets and their runtimes, precisions, tolerance, name, consumers, the checkpoint
    and the profiles) and resolve what it writes; raises the one-line errors the export would."""
    if not targets:
        raise EdgeSSLError(f"--target is empty; choose one or more of: {', '.join(TARGETS)}")
    check_tolerance(tolerance)
    if name is not None:
        _check_name(name, True)
    chosen = [get_target(t) for t in targets]
    for precision in precisions:
        if precision not in PRECISIONS:
            raise EdgeSSLError(f"unknown precision '{precision}'; choose from: {', '.join(PRECISIONS)}")
    for target in chosen:
        target.require()
    users = resolve(consumers, [t.name for t in chosen], log)
    enc = checked_encoder(checkpoint, overrides)
    name = name or enc.cfg.name
    _check_name(name, False)
    out = Path(out_dir)
    _refuse_other_export(out / f"{name}_benchmark.json", enc.path)
    resolved = {t.name: t.profile(enc.info["arch"], profiles) for t in chosen}
    tols = {t: p.tolerance if tolerance is None else tolerance for t, p in resolved.items()}
    int8 = ("ptq", "qat") if qat is not None else ("ptq",)
    variants = [(p, m) for p in precisions for m in (int8 if p == "int8" else ("",))]
    return ExportPlan(enc, chosen, variants, name, out, resolved, tols, users, calib, qat)


def describe(plan: ExportPlan, bundle: bool = False) -> str:
    """`edgessl export --dry-run`: the artifacts the export would write and their settings, one block each."""
    enc, out = plan.enc, plan.out
    lines = [f"dry run: nothing converted; {out}/ {'exists' if out.is_dir() else 'would be created'}",
             f"checkpoint: {enc.path} ({enc.info['arch']}, {enc.cfg.data.image_size} px, epoch {enc.epoch}); "
             f"check data: {enc.cfg.data.format} {enc.cfg.data.root or '(built-in)'}"]
    for target in plan.targets:
        p = plan.profiles[target.name]
        lines.append(f"{target.name} ({target.runtime}, {target.layout}): threads {p.threads}, warm-up {p.warmup}, "
                     f"runs {p.runs}, tolerance {plan.tolerances[target.name]:g} pt, options {p.options}")
        for precision, method in plan.variants:
            path = out / plan.artifact(target, precision, method)
            files = ", ".join(str(f) for f in target.files(path)[1:])
            how = f"int8 {method}, calibration {plan.calibration(target)} images, quantization {p.quantization}" \
                if precision == "int8" else "fp32"
            if method == "qat" and plan.qat is not None:
                how += f"; QAT {plan.qat.steps} steps, lr {plan.qat.lr:g}"
            lines.append(f"  {path}{' + ' + files if files else ''} + {path.name}.md (model card): {how}")
            if bundle:
                lines.append(f"  {path.with_name(f'{path.stem}_{target.name}_bundle')}/ (edgessl-device bundle)")
    for c in plan.consumers:
        lines.append(f"consumer check: {c.name} ({c.requirement}) on every {', '.join(c.targets)} artifact")
    lines.append(f"table: {plan.table}.md and {plan.table}.json")
    run = RunFolder(enc.path.parent)
    if run.config.is_file():
        lines.append(f"report copy: {run / run.EXPORT_TABLE}")
    return "\n".join(lines)
