"""`edgessl export` and `edgessl check` end to end: checkpoint -> artifacts -> on-device check -> table + cards.

Every artifact is written into a staging folder inside the output folder, checked there, given its model card,
and only then moved into place, so a failure (a converter that cannot handle an op, an interrupt) leaves no
half-written file behind; artifacts finished before the failure stay.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from edgessl import __version__
from edgessl.checkpoint import RunFolder
from edgessl.errors import EdgeSSLError
from edgessl.export import Target, get_target
from edgessl.export.check import Reference, latency_ms, measure, paired_latency_ms, reference, size_mb, torch_runner
from edgessl.export.consumers import consumer_rows
from edgessl.export.plan import plan_export
from edgessl.export.profiles import Profile
from edgessl.export.table import Row, status, write_table

if TYPE_CHECKING:
    from edgessl.export.qat import Finetune, QatSettings
    from edgessl.models.encoder_loading import LoadedEncoder

NOT_FASTER = 1.05  # int8 must beat fp32 by 5% to count as faster (latency noise on a shared CPU)


@dataclass
class Result:
    """What an export or check produced."""

    rows: list[Row]
    markdown: str
    table_md: Path
    table_json: Path

    @property
    def passed(self) -> bool:
        return all(r.status == "pass" for r in self.rows)


def read_artifact(target: Target, path: Path) -> dict[str, Any]:
    """The artifact's metadata, after loading it once in its runtime: a damaged file is a one-line error."""
    try:
        meta = target.metadata(path)
        target.load(path, 1)
    except EdgeSSLError:
        raise
    except Exception as exc:  # each runtime raises its own types (protobuf, RuntimeError, ValueError)
        text = " ".join(str(exc).split())[:160] or type(exc).__name__
        raise EdgeSSLError(f"'{path}' is not a readable {target.name} artifact ({text}); re-export it with "
                           "`edgessl export`") from None
    return meta


def check_loaders(enc: LoadedEncoder) -> tuple[Any, Any]:
    from edgessl.measure.loaders import eval_loaders

    return eval_loaders(enc.cfg)


def first_image(loaders: tuple[Any, Any]) -> np.ndarray:
    """One normalized test image (1, 3, S, S): the tracing example and the latency input."""
    return np.ascontiguousarray(loaders[1].dataset[0][0][None].numpy(), dtype=np.float32)


def _metadata(enc: LoadedEncoder, target: Target, precision: str, profile: Profile, calib: int) -> dict[str, Any]:
    """What an artifact records about itself (see `edgessl.export.base` for the input convention)."""
    from edgessl.export.model_card import recipe_hash

    size = enc.cfg.data.image_size  # the recipe's (overridable) size: what calibration and the check feed
    shape = [1, 3, size, size] if target.layout == "NCHW" else [1, size, size, 3]
    meta = {"edgessl": __version__, "target": target.name, "precision": precision, "layout": target.layout,
            "input_shape": shape, "input": "float32 pixels scaled to [0, 1], then (x - mean) / std per channel",
            "output": f"(1, {enc.info['feature_dim']}) float32 pooled pre-logits",
            "checkpoint": str(enc.path.resolve()), "epoch": enc.epoch, "recipe_hash": recipe_hash(enc.cfg.to_dict()),
            **{k: enc.info[k] for k in ("arch", "stem_stride", "feature_dim", "mean", "std")}, "image_size": size}
    if precision == "int8":
        meta.update(quantization=profile.quantization, calibration_images=calib)
    return meta


def _card(path: Path, enc: LoadedEncoder, meta: dict[str, Any], row: Row, consumers: Sequence[Row] = ()) -> None:
    """The model card beside an artifact (`<file>.md`)."""
    from edgessl.export.model_card import write_model_card
    from edgessl.methods import describe

    export = {k: meta[k] for k in ("target", "precision", "layout", "input_shape", "input") if k in meta}
    export.update({k: meta[k] for k in ("quantization", "calibration_images", "input_quantization",
                                        "output_quantization", "exporter", "opset", "producer", "rewrites")
                   if k in meta})
    export.update(file=row.file, runtime=row.runtime)
    if consumers:
        export["consumer_checks"] = {r.runtime: f"{r.status}: cosine {r.cosine_mean:.5f} to PyTorch, kNN "
                                                f"{r.knn_delta:+.2f} pt; {r.note}" for r in consumers}
    metrics = {"knn_top1": row.knn_top1, "knn_delta_vs_pytorch_pt": row.knn_delta, "cosine_mean": row.cosine_mean,
               "cosine_min": row.cosine_min, f"latency_ms_batch1_{row.threads}_threads": row.latency_ms}
    write_model_card(path.with_name(path.name + ".md"),
                     {**enc.info, "image_size": meta["image_size"], "name": path.name, "data": asdict(enc.cfg.data),
                      "method": describe(enc.cfg),
                      "config": enc.cfg.to_dict(),
                      "epoch": enc.epoch, "checkpoint": str(enc.path), "metrics": metrics, "export": export})


def _publish(stage: Path, out_dir: Path, primary: Path) -> None:
    """Move every staged file into `out_dir`, the primary artifact last (it is what users look for)."""
    for f in sorted(stage.iterdir(), key=lambda p: p == primary):
        os.replace(f, out_dir / f.name)


def _not_faster_note(target: Target, path: Path, speedup: float) -> str:
    """Why an int8 artifact is not faster than fp32: the ops its runtime still runs in float."""
    ops = target.float_ops(path)
    if not ops:
        return f"int8 {speedup:.2f}x of fp32: graph is fully integer; at this size per-op overhead dominates"
    top = ", ".join(f"{op}x{n}" for op, n in ops.most_common(4))
    return (f"int8 {speedup:.2f}x of fp32: {sum(ops.values())} ops stay float between quantize/dequantize "
            f"({top}); Q/DQ round trips cost what int8 math saves")


def artifact_row(target: Target, precision: str, path: Path, profile: Profile, ref: Reference, loaders: tuple,
                  image: np.ndarray, tolerance: float, method: str = "") -> Row:
    """Load one artifact in its runtime, measure it and make its table row."""
    runner = target.load(path, profile.threads)
    m = measure(runner, ref, *loaders, image, profile.warmup, profile.runs)
    return Row(target.name, target.runtime, precision, status(m.knn_delta, tolerance), path.name,
               round(size_mb(target.files(path)), 4), m.cosine_mean, m.cosine_min, m.knn_top1, m.knn_delta,
               m.latency_ms, None, profile.threads, method=method)


def _speedups(rows: list[Row], out: Path, profiles: dict[str, Profile], image: np.ndarray) -> None:
    """Fill `speedup` (fp32 / int8 latency, same target) and the note when int8 is not faster. A target's fp32 and
    int8 artifacts are timed again side by side (`paired_latency_ms`): timed minutes apart, around the kNN check,
    host drift on this VM turned a 1.55x speed-up into 0.97x."""
    for name, profile in profiles.items():
        fp32 = next((r for r in rows if r.target == name and r.precision == "fp32"), None)
        int8 = [r for r in rows if r.target == name and r.precision == "int8"]
        if fp32 is None or not int8:
            continue
        target = get_target(name)
        runners = [target.load(out / r.file, profile.threads) for r in (fp32, *int8)]
        fp32.latency_ms, *latencies = paired_latency_ms(runners, image, profile.warmup, profile.runs)
        for row, latency in zip(int8, latencies):
            row.latency_ms, row.speedup = latency, fp32.latency_ms / latency
            if row.speedup < NOT_FASTER:
                row.note = _not_faster_note(target, out / row.file, row.speedup)


def _finetuner(enc: LoadedEncoder, qat: QatSettings, log: Callable[[str], None]) -> Finetune:
    """The QAT trainer: the fp32 encoder as teacher, a pool of training images (eval transform) to draw from."""
    from edgessl.export.calibration import calibration_images
    from edgessl.export.qat import Finetuner

    pool = calibration_images(enc.cfg.data, enc.cfg.data.image_size, qat.pool, seed=qat.seed + 1)
    log(f"QAT: {qat.steps} steps of {qat.batch} images from a pool of {len(pool)} training images, lr {qat.lr:g}")
    return Finetuner(enc.model, pool, qat, log)


def table_header(enc: LoadedEncoder, ref: Reference, tolerance: float | dict[str, float]) -> dict[str, Any]:
    """The table's context: checkpoint, data, tolerance (one number, or one per target) and the reference."""
    return {"edgessl": __version__, "checkpoint": str(enc.path), "arch": enc.info["arch"],
            "image_size": enc.cfg.data.image_size, "tolerance": tolerance,
            "data": {k: getattr(enc.cfg.data, k) for k in ("format", "root", "train_samples")},
            "reference": {"runtime": "pytorch fp32", "knn_top1": ref.knn_top1, "k": ref.k,
                          "temperature": ref.temperature, "num_train": ref.num_train,
                          "num_test": len(ref.test_feats)}}


def pytorch_row(enc: LoadedEncoder, ref: Reference, image: np.ndarray, threads: int, warmup: int,
                 runs: int) -> Row:
    """The PyTorch fp32 baseline row (Ultralytics style): its kNN, parameter size and latency."""
    import torch

    previous = torch.get_num_threads()
    torch.set_num_threads(threads)
    try:
        latency = latency_ms(torch_runner(enc.model), image, warmup, runs)
    finally:
        torch.set_num_threads(previous)
    size = sum(t.numel() * t.element_size() for t in enc.model.state_dict().values()) / 1e6
    return Row("pytorch", f"torch {torch.__version__}", "fp32", "pass", enc.path.name, round(size, 4), 1.0, 1.0,
               ref.knn_top1, 0.0, latency, None, threads)


def export_checkpoint(checkpoint: str | Path, targets: Sequence[str], precisions: Sequence[str], out_dir: str | Path,
                      calib: int | None = None, tolerance: float | None = None, overrides: Sequence[str] = (),
                      profiles: str | Path | None = None, name: str | None = None, consumers: str = "auto",
                      qat: QatSettings | None = None,
                      log: Callable[[str], None] = print) -> Result:
    """Export `checkpoint`'s encoder to each target in each precision, check every artifact, write the table.

    `calib`/`tolerance` override the profiles'; `overrides` are recipe `key=value` changes (e.g. data.root=...);
    `name` is the artifacts' base name (default: the recipe's name); `consumers` the other runtimes each
    artifact is also checked in (`edgessl.export.consumers.resolve`), as extra rows after the targets' rows; `qat`
    adds, per target, an int8 artifact made by quantization-aware training (`<name>_int8_qat<suffix>`, method "qat")
    beside the PTQ one.
    """
    plan = plan_export(checkpoint, targets, precisions, out_dir, calib, tolerance, overrides, profiles, name,
                       consumers, qat, log)
    enc, out, resolved, tols = plan.enc, plan.out, plan.profiles, plan.tolerances
    arch, size = enc.info["arch"], enc.cfg.data.image_size
    loaders = check_loaders(enc)
    log(f"reference: PyTorch fp32 features of {arch} at {size} px")
    ref = reference(enc.model, *loaders, enc.cfg.knn.k, enc.cfg.knn.temperature)
    image = first_image(loaders)
    calib_images = None
    if "int8" in precisions:
        from edgessl.export.calibration import calibration_images

        count = calib if calib is not None else max(p.calibration for p in resolved.values())
        calib_images = calibration_images(enc.cfg.data, size, count)
        log(f"calibration: {len(calib_images)} training images ({enc.cfg.data.format}), eval transform")
    out.mkdir(parents=True, exist_ok=True)
    first = min(resolved.values(), key=lambda p: p.threads)
    rows = [pytorch_row(enc, ref, image, first.threads, first.warmup, first.runs)]
    extra: list[Row] = []  # consumer rows, after every target's rows (the speed-up pairs fp32/int8 by target)
    finetune = _finetuner(enc, qat, log) if qat is not None and "int8" in precisions else None
    for target in plan.targets:
        profile = resolved[target.name]
        for precision, method in plan.variants:
            n = 0 if precision == "fp32" else min(plan.calibration(target), len(calib_images))
            label = f"{target.name} {precision}{' ' + method if method else ''}"
            log(f"[{label}] exporting" + (f" (calibration: {n} images)" if n else ""))
            with tempfile.TemporaryDirectory(prefix=".edgessl-stage-", dir=out) as tmp:
                stage = Path(tmp) / plan.artifact(target, precision, method)
                meta = _metadata(enc, target, precision, profile, n)
                if method == "qat":
                    meta["qat"] = asdict(qat)
                    target.export_qat(enc.model, image, stage, profile, meta, calib_images[:n], finetune)
                else:
                    target.export(enc.model, image, stage, profile, meta, calib_images[:n] if n else None)
                    method = "ptq+fallback" if meta.get("float_nodes") else method
                row = artifact_row(target, precision, stage, profile, ref, loaders, image, tols[target.name],
                                    method)
                checked = consumer_rows(plan.consumers, target, precision, stage, profile, ref, loaders, image,
                                        tols[target.name], row)
                _card(stage, enc, {**meta, **target.metadata(stage)}, row, checked)
                _publish(Path(tmp), out, stage)
            rows.append(row)
            log(f"[{label}] {row.status}: kNN {row.knn_top1:.2f}% ({row.knn_delta:+.2f} pt), "
                f"cosine {row.cosine_mean:.5f}, {row.latency_ms:.3f} ms -> {out / stage.name}")
            for c in checked:
                log(f"[{label} in {c.runtime}] {c.status}: kNN {c.knn_top1:.2f}% ({c.knn_delta:+.2f} pt), "
                    f"cosine {c.cosine_mean:.5f}; {c.note}")
            extra += checked
    _speedups(rows, out, resolved, image)
    rows += extra
    stem = plan.table
    uniform = set(tols.values())
    header = table_header(enc, ref, uniform.pop() if len(uniform) == 1 else tols)
    md = write_table(rows, header, stem.with_suffix(".md"), stem.with_suffix(".json"))
    run = RunFolder(enc.path.parent)
    if run.config.is_file():  # a run folder: `edgessl report` shows its newest export table
        shutil.copyfile(stem.with_suffix(".json"), run / f".{run.EXPORT_TABLE}.tmp")
        os.replace(run / f".{run.EXPORT_TABLE}.tmp", run / run.EXPORT_TABLE)
    return Result(rows, md, stem.with_suffix(".md"), stem.with_suffix(".json"))
